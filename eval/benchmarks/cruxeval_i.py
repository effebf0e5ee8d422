"""CRUXEval-I: predict an input that gives a function's output (`eval.benchmarks.cruxeval`)."""

from eval.benchmarks.cruxeval import CruxEval


class CruxEvalI(CruxEval):
    name = "cruxeval_i"
    mode = "input"


BENCHMARK = CruxEvalI
