"""The report: the paper's tables and figures from judged runs, each as CSV, Markdown or PNG,
and one page that links them all (`build.write_report`).

It stands above the benchmarks and their judges: it reads runs through their read-model
(`eval.runs`) and decides itself which tables and figures a benchmark's runs get
(`benchmarks`). Its modules each hold one reason to change: the paper's published numbers
(`paper`), which AlpacaEval number is shown (`metric`), building frames (`frames`), the paper's
tables (`paper_tables`, `ablations`), paired comparisons (`pairing`), writing tables
(`markdown`) and figures (`plots`), one judge's part of the report (`section`) and the report
folder itself (`build`); which runs it covers is `eval.run_filter`, below the settings.
"""
