"""FLASK-Hard: FLASK's 89 hardest instances, loaded and reported as FLASK is."""

from __future__ import annotations

from eval.benchmarks.flask import Flask


class FlaskHard(Flask):
    name = "flask_hard"
    hard = True


BENCHMARK = FlaskHard
