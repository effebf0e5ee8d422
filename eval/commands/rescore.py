"""`task=rescore`: a judge's output file parsed again, its metrics printed."""

from __future__ import annotations

from eval.commands.output import console
from eval.settings import Settings
from moa.errors import ConfigError


async def rescore_task(settings: Settings) -> int:
    from eval.evaluation import evaluation_reading

    path = settings.rescore_path
    if not path.is_file():
        raise ConfigError(f"rescore.path={path} is not a file")
    task = evaluation_reading(path, settings.data)
    console.print_json(data={"kind": task.name, **task.rescore(path)}, default=str)
    return 0
