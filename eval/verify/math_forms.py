"""The string forms a MATH answer is rewritten into before two answers are compared.

Two normalisers, each with the semantics of the one prm800k's grader uses (openai/prm800k @
7ecc794, `prm800k/grading/`), quirks included, because agreeing with that grader is the point:
`mathd_form` is the Hendrycks MATH release's `_strip_string` (`math_normalize.py`), and
`prm_form` is `grader.py`'s `_normalize`, which also reads LaTeX into plain text with pylatexenc
so that sympy can parse it. Pure functions, no sympy: `math_grader.py` compares the forms.
"""

from __future__ import annotations

import re

from pylatexenc.latex2text import LatexNodes2Text

_TEXT_WRAPPED = re.compile(r"^\\text\{(?P<text>.+?)\}$")
_UNITS = (
    "degree",
    "cm",
    "centimeter",
    "meter",
    "mile",
    "second",
    "minute",
    "hour",
    "day",
    "week",
    "month",
    "year",
    "foot",
    "feet",
    "inch",
    "yard",
)
_UNIT_PATTERNS = [re.compile(unit + r"(es)?(s)? *(\^[0-9]+)?") for unit in _UNITS]
_DEGREE_CIRC = re.compile(r"\^ *\\circ")
_THIN_SPACE_COMMA = re.compile(r",\\! *")
_MINUS_SPACE = re.compile(r"- *")
_MIXED_NUMBER = re.compile(r"([0-9]) +([0-9])")
_THOUSANDS_COMMA = re.compile(r"(\d)(,)(\d\d\d)($|\D)")
_FRACTION = re.compile(r"^-?[0-9]+.?/0*[1-9][0-9]*.?$")
# what pylatexenc writes for \sqrt, \pi, \infty, \cup, \cdot and \times
_TO_PLAIN = {
    "\u221a": "sqrt",
    "\u03c0": "pi",
    "\u221e": "inf",
    "\u222a": "U",
    "\u00b7": "*",
    "\u00d7": "*",
}
TUPLE_CHARS = "()[]"


class _KeepAsIs(Exception):
    """A step of the MATH normaliser cannot apply: the answer is compared as it was written."""


# --- the Hendrycks MATH normaliser (`math_normalize.normalize_answer`) -------------------------


def mathd_form(answer: str) -> str:
    answer = answer.strip()
    found = _TEXT_WRAPPED.search(answer)
    if found is not None:
        answer = found.group("text").strip()
    try:
        return _strip(answer)
    except _KeepAsIs:
        return answer


def _strip(s: str) -> str:
    s = s.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    s = s.replace("tfrac", "frac").replace("dfrac", "frac")
    s = s.replace("\\left", "").replace("\\right", "")
    s = s.replace("^{\\circ}", "").replace("^\\circ", "")
    s = s.replace("\\$", "")
    s = _drop_right_units(s)
    s = s.replace("\\%", "")
    s = s.replace(" .", " 0.").replace("{.", "{0.")
    if not s:
        return s
    if s[0] == ".":
        s = "0" + s
    sides = s.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:  # "k = 5" -> "5"
        s = sides[1]
    s = _brace_sqrt(s)
    s = s.replace(" ", "")
    s = _brace_fracs(s)
    if s == "0.5":
        s = "\\frac{1}{2}"
    return _slash_to_frac(s)


def _drop_right_units(s: str) -> str:
    """`5\\text{ cm}` -> `5`; more than one such unit leaves the answer as written."""
    if "\\text{ " not in s:
        return s
    parts = s.split("\\text{ ")
    if len(parts) != 2:
        raise _KeepAsIs
    return parts[0]


def _brace_sqrt(s: str) -> str:
    """`\\sqrt3` -> `\\sqrt{3}`."""
    if "\\sqrt" not in s:
        return s
    first, *rest = s.split("\\sqrt")
    out = first
    for part in rest:
        if not part:
            raise _KeepAsIs
        out += "\\sqrt" + (part if part[0] == "{" else "{" + part[0] + "}" + part[1:])
    return out


def _brace_fracs(s: str) -> str:
    """`\\frac12` -> `\\frac{1}{2}`, `\\frac1{72}` -> `\\frac{1}{72}`."""
    first, *rest = s.split("\\frac")
    out = first
    for part in rest:
        out += "\\frac"
        if not part:
            raise _KeepAsIs
        if part[0] == "{":
            out += part
        elif len(part) < 2:
            return s
        elif part[1] != "{":
            out += "{" + part[0] + "}{" + part[1] + "}" + part[2:]
        else:
            out += "{" + part[0] + "}" + part[1:]
    return out


def _slash_to_frac(s: str) -> str:
    """`3/4` -> `\\frac{3}{4}` when both sides are plain integers."""
    parts = s.split("/")
    if len(parts) != 2:
        return s
    try:
        a, b = int(parts[0]), int(parts[1])
    except ValueError:
        return s
    return "\\frac{" + str(a) + "}{" + str(b) + "}" if s == f"{a}/{b}" else s


# --- prm800k's own normaliser (`grader._normalize`) --------------------------------------------


def prm_form(expr: str) -> str:
    found = _TEXT_WRAPPED.search(expr)
    if found is not None:
        expr = found.group("text")
    expr = expr.replace("\\%", "%").replace("\\$", "$").replace("$", "").replace("%", "")
    expr = expr.replace(" or ", " , ").replace(" and ", " , ")
    expr = expr.replace("million", "*10^6").replace("billion", "*10^9")
    expr = expr.replace("trillion", "*10^12")
    for unit in _UNIT_PATTERNS:
        expr = unit.sub("", expr)
    expr = _DEGREE_CIRC.sub("", expr)
    if expr and expr[0] == "{" and expr[-1] == "}":
        expr = expr[1:-1]
    expr = _THIN_SPACE_COMMA.sub("", expr)
    if _is_float(expr) and _is_int(float(expr)):
        expr = str(round(float(expr)))
    if "\\" in expr:
        expr = _latex_to_plain(expr)
    expr = _MINUS_SPACE.sub("-", expr)
    expr = _MIXED_NUMBER.sub(r"\1+\2", expr)  # "7 3/4" -> "7+3/4"
    expr = expr.replace(" ", "").replace("{", "").replace("}", "").lower()
    if str_is_int(expr):
        expr = str(int(float(expr.replace(",", ""))))
    return expr


def _latex_to_plain(expr: str) -> str:
    spaced = expr.replace("\\tfrac", "\\frac").replace("\\dfrac", "\\frac")
    spaced = spaced.replace("\\frac", " \\frac")  # "1\\frac12" stays a mixed number
    try:
        plain = str(LatexNodes2Text().latex_to_text(spaced))
    except Exception:  # pylatexenc gives up on some input; the reference then keeps it as it was
        return expr
    for symbol, word in _TO_PLAIN.items():
        plain = plain.replace(symbol, word)
    return plain.strip()


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _is_int(x: float) -> bool:
    try:
        return abs(x - round(x)) <= 1e-7
    except (OverflowError, ValueError):  # inf, nan
        return False


def str_is_int(text: str) -> bool:
    try:
        return _is_int(float(strip_thousands_commas(text)))
    except ValueError:
        return False


def is_fraction(text: str) -> bool:
    return _FRACTION.search(text) is not None


def strip_thousands_commas(expr: str) -> str:
    """`1,000,000` -> `1000000`, leaving the commas of a tuple such as `(1,2)` alone."""
    while True:
        stripped = _THOUSANDS_COMMA.sub(r"\1\3\4", expr)
        if stripped == expr:
            return stripped
        expr = stripped


def split_tuple(expr: str) -> list[str]:
    """The elements of a tuple or interval (`(1,2]` -> `["1", "2"]`), else the one element."""
    expr = strip_thousands_commas(expr)
    if not expr:
        return []
    inner = expr[1:-1]
    if (
        len(expr) > 2
        and expr[0] in TUPLE_CHARS
        and expr[-1] in TUPLE_CHARS
        and not any(ch in inner for ch in TUPLE_CHARS)
    ):
        return [elem.strip() for elem in inner.split(",")]
    return [expr]
