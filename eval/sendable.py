"""Text that can be sent to a model: checked once, before a run or a prompt spends anything.

Its own module so that a one-prompt run checks its prompt without importing generation (and
with it the benchmarks' and judges' modules)."""

from __future__ import annotations

from moa.errors import ConfigError


def check_text(text: str, where: str) -> None:
    """Refuses text that cannot be sent: a lone UTF-16 surrogate (from a `\\ud800` escape in a
    JSON file, or undecodable bytes on the command line) has no UTF-8 form."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        char = f"U+{ord(text[exc.start]):04X}"
        raise ConfigError(
            f"{where}: a lone surrogate ({char}) at character {exc.start} cannot be sent as "
            "UTF-8; fix the text"
        ) from None
