"""Scoring without a judge: answers that can be checked exactly (GSM8K, MATH-500, CRUXEval).

Each benchmark's module reads the final answer out of a model's text and decides it as the
benchmark's reference scorer does; `verdict.py` is the per-instance record and the accuracy with
its interval. MATH's sympy runs in worker processes (`workers.py`) and CRUXEval's assertions in a
sandbox (`sandbox.py`), so neither can stall or harm the run.
"""
