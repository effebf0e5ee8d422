"""`task=plan`: the calls, tokens and dollars a config or a whole sweep will spend."""

from __future__ import annotations

from eval.commands.output import console
from eval.settings import Settings


async def plan_task(settings: Settings) -> int:
    """Prints the calls, tokens and dollars a config or a whole sweep will spend, sharing
    counted once; nothing is called. `plan.experiments=all` plans the paper's whole suite
    (its points composed from the command's own overrides)."""
    from eval.plan import plan_sweep
    from eval.suite import EXPERIMENTS, compose_points

    wanted = settings.plan.experiments
    experiments = list(EXPERIMENTS) if wanted == "all" else list(wanted or [])
    points = compose_points(settings.overrides, experiments) if experiments else [settings]
    results = await plan_sweep(settings, points, console)
    if settings.plan.detect is not None:
        from eval.power_plan import plan_power

        console.rule("power")
        print(plan_power(settings, results[0][1] if results else None).render())
    return 0
