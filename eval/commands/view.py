"""`task=view`: the static site to browse every run (`eval.view.site`)."""

from __future__ import annotations

from eval.commands.output import console
from eval.settings import Settings


async def view_task(settings: Settings) -> int:
    from eval.view.site import main

    return main(settings, console)
