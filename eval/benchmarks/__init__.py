"""The benchmarks: one module each (`eval.benchmarks.<name>`, its `BENCHMARK`), holding its
validated loading, decoding and native output files (`benchmark.Benchmark`); subsets, and (in
`fetch`) download, cache, offline override. Nothing here judges: see `eval.judges`.

`fetch` stays a submodule here rather than a re-exported name, so that `eval.benchmarks.fetch`
always means the module.
"""

from eval.benchmarks.alpaca_eval import load_alpaca_eval
from eval.benchmarks.base import DataError, Instance
from eval.benchmarks.flask import load_flask
from eval.benchmarks.mt_bench import load_mt_bench
from eval.benchmarks.subset import select

__all__ = [
    "DataError",
    "Instance",
    "load_alpaca_eval",
    "load_flask",
    "load_mt_bench",
    "select",
]
