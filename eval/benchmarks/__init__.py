"""The benchmarks: one module each (`eval.benchmarks.<name>`, its `BENCHMARK`), holding its
validated loading, decoding and native output files (`benchmark.Benchmark`); subsets, and (in
`fetch`) download, cache, offline override. Nothing here judges: see `eval.judges`.

The package itself imports no benchmark module: `eval.evaluation` imports the one a run names,
when it runs, so start-up (`eval.settings` imports `eval.benchmarks.data`) pays for no other.
`fetch` stays a submodule here rather than a re-exported name, so that `eval.benchmarks.fetch`
always means the module.
"""

from eval.benchmarks.base import DataError, Instance
from eval.benchmarks.subset import select

__all__ = ["DataError", "Instance", "select"]
