"""Where the commands speak: the terminal (rich) and the run's `cli.log`."""

from __future__ import annotations

import logging

from rich.console import Console
from rich.markup import escape

console = Console()
log = logging.getLogger("moa_bench")


def say(text: str, style: str = "") -> None:
    """A line for the person at the terminal and for the run's `cli.log`."""
    console.print(escape(text), style=style or None)
    log.info(text)
