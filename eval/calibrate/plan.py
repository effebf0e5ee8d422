"""A calibration's calls planned before any is sent: `calibrate.dry_run=true` prints the plan and
stops, a real calibration prints the same line before its first call.

It is planned as `task=plan` plans a run's judging (`eval.plan`): the calibration's very requests
go through the plan's stand-in (`eval.plan_stand_in.StandIn`), which calls no model, under the
keys the client would give them, looked up in the configured call cache (`eval.plan.open_cache`),
and are added up and priced from the catalogue by the plan's tally (`eval.plan_figures.Tally`).
Tokens are estimates: `moa.tokens` for the requests, `plan.output_tokens` capped by the judge's
`max_tokens` for the answers. Nothing is sent, not even the endpoint's model list
(`eval.preflight`), which only a real calibration checks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from rich.markup import escape

from eval.commands.output import console
from eval.plan import open_cache
from eval.plan_figures import PlanResult, Tally
from eval.plan_stand_in import StandIn
from eval.preflight import check_served
from eval.settings import Settings
from moa.catalogue import split_address, unbilled_endpoints
from moa.client import endpoint_identity
from moa.errors import ConfigError
from moa.ledger import price_hint
from moa.types import Generator

# Sends a calibration's requests through the generator; returns what they judge, by part
# (e.g. {"pairs": 100, "swapped": 20}).
Send = Callable[[Generator], Awaitable[Mapping[str, int]]]


def dry_run(run: Settings) -> bool:
    """`calibrate.dry_run`: plan the calibration and send nothing."""
    value = run.calibrate.get("dry_run", False)
    if not isinstance(value, bool):
        raise ConfigError(f"calibrate.dry_run={value!r}: give true or false")
    return value


def _where(name: str, spec: Mapping[str, object]) -> str:
    """An endpoint as a user finds it in the config: its name and URL, or its provider."""
    return f"{name} ({spec.get('base_url') or spec.get('provider', 'openai')})"


async def plan_line(run: Settings, judge: str, send: Send) -> str:
    """The calibration's requests, those the cache holds, its tokens and dollars, in a line."""
    endpoints = run.endpoints
    endpoint = split_address(judge)[0]
    cache = open_cache(run)
    try:
        identities = {}
        if cache is not None:  # no cache, no need of the real keys
            identities[endpoint] = await endpoint_identity(endpoint, endpoints[endpoint])
        output_tokens = run.plan.output_tokens
        planner = StandIn(lambda _address: output_tokens, frozenset(), cache, identities)
        planner.recording = []
        parts = await send(planner)
    finally:
        if cache is not None:
            cache.close()
    unbilled = unbilled_endpoints(endpoints)
    tally = Tally("calibration", run.catalogue, planner, lambda name: name not in unbilled)
    tally.add_calls(planner.recording)
    made = tally.result()
    judged = ", ".join(f"{n:,} {part}" for part, n in parts.items())
    line = (
        f"plan: judge {judge} on endpoint {_where(endpoint, endpoints[endpoint])}: {judged}; "
        f"{made.calls:,} requests, {made.cached:,} in the cache, {made.new_calls:,} to make; "
        f"about {made.input_tokens:,} input and {made.output_tokens:,} output tokens; "
        f"${made.new_usd:,.2f} to pay of ${made.usd:,.2f}"
    )
    if endpoint in unbilled:
        line += " (the endpoint does not bill)"
    if made.unpriced:
        line += f"; {made.unpriced:,} calls have no catalogue price: {price_hint(judge)}"
    budget = run.budget
    warning = PlanResult([made], frozenset()).budget_warning(budget.max_usd, budget.max_calls)
    return line + (f"\n{warning}" if warning else "")


async def announce(run: Settings, judge: str, send: Send) -> bool:
    """Prints the calibration's plan line; then, unless `calibrate.dry_run`, what the judge's
    endpoint no longer serves. False for a dry run: nothing is to be sent."""
    console.print(await plan_line(run, judge, send), markup=False, soft_wrap=True)
    if dry_run(run):
        return False
    for line in await check_served(run, [judge]):
        console.print(f"[yellow]{escape(line)}")
    return True
