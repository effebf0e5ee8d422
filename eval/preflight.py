"""Every model a run will call, checked against its endpoint's model list before the first call.

The paper's judges and many of its 2024 proposers are shut down. Without this check a run finds
out call by call, after generation has been paid for. Listing an endpoint's models is free, so a
run asks each endpoint once (the answer is kept for `LIST_TTL_S`, for the repeats and sweep
points one process runs) and refuses a model its endpoint does not list, in one line that says
the way out; a model whose listing carries a shutdown date within `preflight.run_days` is named.
Endpoints with no model list to ask are skipped: the embedded, scripted and replayed ones, any
set to `lists_models: false`, and any whose list cannot be read or is empty (its calls then find
out, `moa.client`); `preflight.models=false` skips them all.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

from eval.settings import Settings, build_client
from moa.catalogue import split_address
from moa.client import LISTS_MODELS, ModelClient
from moa.errors import ConfigError
from moa.served import ServedModel
from moa.types import ErrorKind, ModelError

log = logging.getLogger(__name__)

LIST_TTL_S = 300.0  # how long a model list is trusted within one process
NOT_LISTED = ("scripted", "replay", "local")  # providers with no model list to ask
WAY_OUT = (
    "a judge of today (judge=gpt41, judge=open_weights or judge=local; README: Models that "
    "still exist), or `moa-bench task=models` for what the endpoint serves"
)

# (endpoint, its identity): when its list was read, and the list
_lists: dict[tuple[str, str], tuple[float, list[ServedModel]]] = {}


async def model_list(
    client: ModelClient, endpoint: str, clock: Callable[[], float] = time.monotonic
) -> list[ServedModel]:
    """The endpoint's model list, read at most once per `LIST_TTL_S`."""
    ep = client.endpoint(endpoint)
    key = (endpoint, ep.api.identity)
    kept = _lists.get(key)
    if kept is not None and clock() - kept[0] < LIST_TTL_S:
        return kept[1]
    try:
        async with asyncio.timeout(ep.timeout_s):  # the SDK's own timeout is off (`moa.client`)
            served: list[ServedModel] = await cast(Any, ep.api).list_models()
    except TimeoutError:
        raise ModelError(ErrorKind.TRANSIENT, f"no model list after {ep.timeout_s:g}s") from None
    _lists[key] = (clock(), served)
    return served


def checked_endpoints(settings: Settings, addresses: Sequence[str]) -> list[str]:
    """The endpoints of `addresses` that have a model list to check against."""
    specs = settings.endpoints
    names = dict.fromkeys(split_address(a)[0] for a in addresses)
    return [
        n
        for n in names
        if str(specs.get(n, {}).get("provider", "openai")) not in NOT_LISTED
        and specs.get(n, {}).get(LISTS_MODELS, True) is not False
    ]


async def check_served(
    settings: Settings,
    addresses: Sequence[str],
    today: dt.date | None = None,
) -> list[str]:
    """Refuses (a `ConfigError`) the models of `addresses` their endpoints do not serve; returns
    a line for each one that shuts down within `preflight.run_days`."""
    preflight = settings.preflight
    if preflight.get("models", True) is False:
        return []
    endpoints = checked_endpoints(settings, addresses)
    if not endpoints:
        return []
    client = build_client(settings, ledger_path=None)
    lists: dict[str, dict[str, ServedModel]] = {}
    try:
        for endpoint in endpoints:
            try:
                listed = await model_list(client, endpoint)
            except ModelError as exc:  # unreachable, or no list: its calls will tell
                log.warning("endpoint %s: its models are not checked: no list (%s)", endpoint, exc)
                continue
            if listed:  # an empty list tells nothing (a server with no model loaded yet)
                lists[endpoint] = {m.id: m for m in listed}
    finally:
        await client.aclose()
    today = today or dt.datetime.now(dt.UTC).date()
    horizon = today + dt.timedelta(days=float(preflight.get("run_days", 2)))
    missing, soon = [], []
    for address in dict.fromkeys(addresses):
        endpoint, model_id = split_address(address)
        if endpoint not in lists:
            continue
        served = lists[endpoint].get(model_id)
        if served is None or (served.shutdown is not None and served.shutdown <= today):
            missing.append(f"{model_id} (endpoint {endpoint})")
        elif served.shutdown is not None and served.shutdown <= horizon:
            soon.append(
                f"model {model_id} on endpoint {endpoint} shuts down on {served.shutdown}, "
                f"before this run may end (preflight.run_days={preflight.get('run_days', 2)})"
            )
    if missing:
        raise ConfigError(
            f"not served any more: {', '.join(missing)}; choose {WAY_OUT} "
            "(preflight.models=false skips this check)"
        )
    return soon


def gone_line(model: str, why: str) -> str:
    """The run's last word on a model its endpoint refused as not served (`ModelClient.gone`)."""
    return f"model {model} is not served ({why}): its other calls were refused unsent; {WAY_OUT}"
