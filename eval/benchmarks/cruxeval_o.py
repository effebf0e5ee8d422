"""CRUXEval-O: predict a function's output for a given input (`eval.benchmarks.cruxeval`)."""

from eval.benchmarks.cruxeval import CruxEval


class CruxEvalO(CruxEval):
    name = "cruxeval_o"
    mode = "output"


BENCHMARK = CruxEvalO
