"""GSM8K: the final number of an answer against the number after the gold's `####`.

The gold is GSM8K's own format: a solution whose last line is `#### <number>`, commas as
thousands separators (`#### 1,450,000`). The prompt asks the model for the same final line, so
the answer's last `####` line is read first; without one, the last number anywhere in the text
is taken, as lm-evaluation-harness's "flexible-extract" does, because small models often state
the result without the marker and the last number is nearly always the result. GSM8K's own
scorer (`grade_school_math/dataset.py`) compares the strings after removing commas; here the
numbers are compared as exact decimals, so `18.00` and `$18` match `18`.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from eval.verify.verdict import Verdict

MARKER = "####"
# a number: thousands groups or plain digits, an optional decimal part, an optional minus sign
NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")


def gold_answer(solution: str) -> str:
    """The number after the `####` of a GSM8K solution, commas removed; ValueError without."""
    if MARKER not in solution:
        raise ValueError(f"a GSM8K solution without `{MARKER}`: {solution[-80:]!r}")
    found = NUMBER.search(solution.rsplit(MARKER, 1)[1])
    if found is None:
        raise ValueError(f"no number after `{MARKER}`: {solution[-80:]!r}")
    return found.group().replace(",", "")


def final_number(answer: str) -> tuple[str | None, str]:
    """(the final number with commas removed, how it was found) or (None, why not)."""
    marked = [line for line in answer.splitlines() if line.strip().startswith(MARKER)]
    if marked:
        found = NUMBER.search(marked[-1])
        if found is None:
            return None, f"no number on the last `{MARKER}` line"
        return found.group().replace(",", ""), f"the last `{MARKER}` line"
    numbers = NUMBER.findall(answer)
    if not numbers:
        return None, "no number in the answer"
    return numbers[-1].replace(",", ""), f"no `{MARKER}` line: the last number"


def score(answer: str, gold: str) -> Verdict:
    """`gold` as `gold_answer` returns it."""
    extracted, how = final_number(answer)
    if extracted is None:
        return Verdict(answer, None, gold, "wrong", how)
    try:
        equal = Decimal(extracted) == Decimal(gold)
    except InvalidOperation:
        raise ValueError(f"a GSM8K gold answer that is not a number: {gold!r}") from None
    if equal:
        return Verdict(answer, extracted, gold, "correct", f"{how}, equal to the gold")
    return Verdict(answer, extracted, gold, "wrong", f"{how}, not the gold")
