"""The benchmarks' judges: specs as data (`spec`, `conf/judge_spec/`) run by a few kinds
(`kinds`: `pairwise`, `single`, `rubric`, `exact`, `pairwise_baseline`), each faithful to its
reference tool.

The reference ports are `alpaca_eval` (AlpacaEval 2.0, with `alpaca_eval_metrics`), `mt_bench`
(FastChat single-answer grading), `mt_bench_pair` (its pairwise-baseline mode) and `flask`
(FLASK skill scores): pure functions that build one judge request and read one verdict, plus
an async runner that judges many items through a `moa.types.Generator`.
"""
