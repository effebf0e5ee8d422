"""FLASK-Hard: FLASK's 89 hardest instances, judged and reported as FLASK is."""

from __future__ import annotations

from eval.tasks.flask import Flask


class FlaskHard(Flask):
    name = "flask_hard"
    hard = True


TASK = FlaskHard
