"""Whether a MATH answer equals the gold one, with the semantics of prm800k's `grade_answer`.

The order is the reference's: equal after the Hendrycks normaliser; else equal after prm800k's;
else element by element (a tuple or interval needs the same brackets and length): two plain
fractions must match as written (an unreduced fraction is wrong), an integer only matches an
integer, and anything else is equal when sympy simplifies the difference to 0. The reference's
guards against expressions sympy hangs on are kept (more than two unknown letters, `^{`, `^(`,
long or stacked powers). The reference itself has no time limit: this module can block, so it
runs in worker processes (`python -m eval.verify.math_grader`, see `workers.py`) that the caller
kills when a comparison overruns. Each answer comes with the reason for it.
"""

from __future__ import annotations

import json
import re
import resource
import sys

import sympy
from sympy.parsing import sympy_parser

from eval.verify.math_forms import (
    is_fraction,
    mathd_form,
    prm_form,
    split_tuple,
    str_is_int,
)
from eval.verify.workers import READY

_BAD_SUBSTRINGS = ("^{", "^(")
_BAD_PATTERNS = (re.compile(r"\^[0-9]+\^"), re.compile(r"\^[0-9][0-9]+"))
_TRANSFORMATIONS = (
    *sympy_parser.standard_transformations,
    sympy_parser.implicit_multiplication_application,
)


def grade_answer(given: str | None, gold: str) -> tuple[bool, str]:
    """(correct, why) for one answer against the gold answer."""
    if given is None:
        return False, "no answer"
    if mathd_form(gold) == mathd_form(given):
        return True, "equal after the MATH normalisation"
    gold_form, given_form = prm_form(gold), prm_form(given)
    if gold_form == given_form:
        return True, "equal after prm800k's normalisation"
    if not given_form:
        return False, "empty after normalisation"
    gold_elems, given_elems = split_tuple(gold_form), split_tuple(given_form)
    if len(gold_elems) > 1 and (gold_form[0] != given_form[0] or gold_form[-1] != given_form[-1]):
        return False, "different brackets"
    if len(gold_elems) != len(given_elems):
        return False, f"{len(given_elems)} elements where the gold has {len(gold_elems)}"
    for gold_elem, given_elem in zip(gold_elems, given_elems, strict=True):
        correct, why = _elements_equal(gold_elem, given_elem)
        if not correct:
            return False, why
    return True, "equal under sympy"


def _elements_equal(gold: str, given: str) -> tuple[bool, str]:
    if is_fraction(gold) and is_fraction(given):
        return (True, "") if gold == given else (False, f"fraction {_short(given)} is not {gold}")
    if str_is_int(gold) != str_is_int(given):
        return False, "an integer against a non-integer"
    expr = f"({gold})-({given})"
    if not _sympy_may_try(expr):
        return False, f"not equal as written, and sympy is not tried on {_short(expr)}"
    if _zero_under_sympy(expr):
        return True, ""
    return False, f"sympy does not reduce {_short(expr)} to 0"


def _short(text: str, chars: int = 80) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def _sympy_may_try(expr: str) -> bool:
    letters = {ch for ch in expr.replace("sqrt", "").replace("frac", "") if ch.isalpha()}
    return (
        len(letters) <= 2
        and not any(bad in expr for bad in _BAD_SUBSTRINGS)
        and not any(bad.search(expr) for bad in _BAD_PATTERNS)
    )


def _zero_under_sympy(expr: str) -> bool:
    try:
        parsed = sympy_parser.parse_expr(expr.replace("^", "**"), transformations=_TRANSFORMATIONS)
        return bool(sympy.simplify(parsed) == 0)
    except Exception:  # as the reference: whatever sympy cannot parse or simplify is not equal
        return False


def serve(memory_bytes: int) -> None:
    """The worker's loop: `[given, gold]` per line in, `[correct, why]` per line out."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    print(READY, flush=True)
    for line in sys.stdin:
        given, gold = json.loads(line)
        print(json.dumps(grade_answer(given, gold)), flush=True)


if __name__ == "__main__":
    serve(int(sys.argv[1]))
