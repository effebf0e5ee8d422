"""One run directory as the run browser's plain records: the index row, the instance list, each
instance's full record and its searchable text.

Everything is read through the run directory's typed readers (`eval.rundir`) and the run's
evaluation (`eval.evaluation`), which says what its judge's verdicts are; nothing here knows a
benchmark. Layers are shown as the trace holds them, a list of layers of calls and a final
call, with every field a call carries, so that a new kind of layer or call field shows without
a change here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from eval.benchmarks.data import Data
from eval.evaluation import Evaluation
from eval.judge_bias import summary
from eval.judges.readings import Verdict
from eval.paper_rows import identity_departure
from eval.report.run_figures import figures
from eval.run_labels import Namer
from eval.rundir import InstanceResult, RunDir, RunIdentity, RunMetrics
from eval.runs import judgment_of, namer_of, open_run, selection_label
from moa.events import ContextOverflow
from moa.trace import CallTrace, TurnTrace

# A call's fields the browser does not show: the cache key is an internal address.
HIDDEN = ("key",)
# The search text keeps this much of each text, enough to find an instance by its words.
SEARCH_CHARS = 4000


@dataclass
class RunView:
    """A run's records: `entry` for the index, `rows` one per instance (in benchmark order),
    `instances` the full records, and `search` each instance's text, lower-cased."""

    key: str
    entry: dict[str, Any]
    rows: list[dict[str, Any]]
    instances: list[dict[str, Any]]
    search: list[str]


def run_key(run: RunDir, name: str) -> str:
    """`<benchmark>/<run>`, the run's part of a deep link (`name`: its name under its
    benchmark's folder, `eval.runs.run_dirs`); a damaged `run.json` raises."""
    identity = run.identity()
    return f"{identity.benchmark if identity else run.path.parent.name}/{name}"


def href(benchmark: str, name: str) -> str:
    """The deep link to a run, each part escaped as the page escapes them (a `/` too)."""
    return "#" + "/".join(quote(part, safe="") for part in (benchmark, name))


def read_run(run: RunDir, data: Data, name: str) -> RunView:
    """The records of one run directory, called `name`; damage raises
    (`eval.runs.DAMAGE`)."""
    identity, task = open_run(run, data)
    results = run.results()
    finished = {k: r for k, r in results.items() if r.outputs is not None}  # `run.finished()`
    judgment = judgment_of(run, task, finished)  # none: not judged yet
    metrics = judgment.metrics if judgment else None
    scores = judgment.scores() if judgment else {}
    verdicts = judgment.verdicts() if judgment else {}
    ordered = sorted(results.values(), key=lambda r: _order(r.id))
    namer = namer_of(run)
    instances = [_instance(r, verdicts.get(r.id), namer) for r in ordered]
    rows = [_row(r, verdicts.get(r.id)) for r in ordered]
    search = [_search(r, verdicts.get(r.id)) for r in ordered]
    entry = _entry(run, name, identity, task, metrics, results, scores, namer)
    return RunView(entry["key"], entry, rows, instances, search)


def dollars(costs: Iterable[float]) -> float | None:
    """A sum of call costs; none when one of them has no price (NaN, which no JSON holds)."""
    values = list(costs)
    return None if any(math.isnan(v) for v in values) else sum(values)


def _order(id_: str) -> tuple[int, str]:
    """Numeric ids in numeric order (every benchmark here numbers its instances)."""
    return (int(id_), "") if id_.isdigit() else (1 << 62, id_)


def layer_kinds(identity: RunIdentity) -> list[str]:
    """What each proposer layer's agents do, beyond proposing ("" for a layer of proposers):
    `rank`, `critique`, a strategy's path (`moa.mixture` kinds, from the identity's settings)."""
    kinds = []
    for layer in identity.layers:
        said = [a.strategy or ("" if a.kind == "propose" else a.kind) for a in layer]
        kinds.append(", ".join(dict.fromkeys(k for k in said if k)))
    return kinds


def _entry(
    run: RunDir,
    name: str,
    identity: RunIdentity,
    task: Evaluation,
    metrics: RunMetrics | None,
    results: Mapping[str, InstanceResult],
    scores: Mapping[str, float],
    namer: Namer,
) -> dict[str, Any]:
    """The index row: what the run is, how much it did and spent, and what the judge found."""
    calls = [c for r in results.values() for c in r.trace.calls()]
    values = metrics.values if metrics else {}
    departure = identity_departure(identity, lambda a: namer.catalogue.by_address(a).name)
    # a changed preset is not the paper's row: no paper number beside it
    variant = "" if departure else identity.variant
    return {
        "key": f"{identity.benchmark}/{name}",
        "href": href(identity.benchmark, name),
        "benchmark": identity.benchmark,
        "run": name,
        "variant": identity.variant,
        "provider": namer.provider(identity),
        "layers": identity.n_layers,
        "proposers": [namer(a) for a in identity.proposers],
        "aggregator": namer(identity.aggregator_model),
        "mode": identity.mode,
        "kinds": layer_kinds(identity),
        "subset": selection_label(identity.selection),
        "instances": len(results),
        "failed": sum(r.outputs is None for r in results.values()),
        "degraded": sum(r.outputs is not None and r.degraded for r in results.values()),
        "calls": sum(r.calls for r in results.values()),
        "cached": sum(c.cached for c in calls),
        "input_tokens": sum(r.input_tokens for r in results.values()),
        "output_tokens": sum(r.output_tokens for r in results.values()),
        "cost_usd": dollars(c.cost_usd for c in calls),
        "billed_usd": dollars(c.cost_usd for c in calls if c.billed),
        "judge": namer.judge(metrics.judge) if metrics else None,
        "judge_calls": metrics.judge_calls if metrics else 0,
        "judge_usd": values.get("judge_usd"),
        "judge_nominal_usd": values.get("judge_nominal_usd"),
        "judge_failures": values.get("failures"),
        "judge_error": values.get("judge_error"),
        "judge_bias": summary(metrics.bias) if metrics else "",  # `eval.judge_bias`
        "scored": len(scores),
        "departure": departure,
        "figures": [
            dataclasses.asdict(f) for f in figures(identity.benchmark, variant, values, scores)
        ],
    }


def _row(result: InstanceResult, verdict: Verdict | None) -> dict[str, Any]:
    """The instance list's line: enough to list, filter, sort and compare without its record."""
    return {
        "id": result.id,
        "title": (result.turns[0] if result.turns else "")[:160],
        "turns": len(result.turns),
        "error": result.error,
        "degraded": result.outputs is not None and result.degraded,
        "score": verdict.score if verdict else None,
        "outcome": verdict.outcome if verdict else None,
        "tags": verdict.tags if verdict else [],
    }


def _search(result: InstanceResult, verdict: Verdict | None) -> str:
    """The instruction, the final answers and the judge's text: what a search looks through."""
    texts = [*result.turns, *(result.outputs or ())]
    if verdict:
        texts += [r.text or "" for r in verdict.readings]
    return "\n".join(t[:SEARCH_CHARS] for t in texts).lower()


def _call(call: CallTrace, notes: Sequence[str], namer: Namer) -> dict[str, Any]:
    """A call's fields; one a stand-in answered says who did (`answered by`)."""
    data = {k: v for k, v in dataclasses.asdict(call).items() if k not in HIDDEN}
    if namer.stands_in(call.model):
        data["answered by"] = namer(call.model)
    return {**data, "label": call.label, "unsent": not call.key, "notes": list(notes)}


def _own_events(turn: TurnTrace, call: CallTrace, depth: int | None) -> list[ContextOverflow]:
    """The context-policy events of one call: those at it (`<role> <model>#<sample> (layer
    <d>)`, or without the layer for the final call), so that `agg#1` is never taken for
    `agg#10`."""
    at = f" {call.label} (layer {depth})" if depth else f" {call.label}"
    return [e for e in turn.events if isinstance(e, ContextOverflow) and e.at.endswith(at)]


def _turn(turn: TurnTrace, namer: Namer) -> dict[str, Any]:
    """A turn's layers with each call's policy events, and each proposal marked where its
    consumers saw it trimmed or dropped (or left out because it failed)."""
    own = [
        [_own_events(turn, c, depth) for c in layer] for depth, layer in enumerate(turn.layers, 1)
    ]
    layers = [
        [_call(c, [str(e) for e in events], namer) for c, events in zip(layer, said, strict=True)]
        for layer, said in zip(turn.layers, own, strict=True)
    ]
    final_events = [] if turn.final is None else _own_events(turn, turn.final, None)
    final = None if turn.final is None else _call(turn.final, [str(e) for e in final_events], namer)
    # Layer d's proposals are read by layer d + 1, the last layer's by the final call.
    consumers = [
        *(
            list(zip(layer, said, strict=True))
            for layer, said in zip(layers[1:], own[1:], strict=True)
        ),
        [(final, final_events)] if final else [],
    ]
    for proposals, readers in zip(layers, consumers, strict=False):
        for proposal in proposals:
            proposal["references"] = []
        answered = [p for p in proposals if p["text"] is not None]
        for p in proposals:
            if p["text"] is None:
                p["references"].append("left out of the next layer's references: it failed")
        for reader, events in readers:
            for overflow in events:
                if overflow.policy == "trim":
                    for p in answered:
                        p["references"].append(f"trimmed for {reader['label']}")
                if n := overflow.dropped:
                    for p in answered[-n:]:
                        p["references"].append(f"dropped for {reader['label']}")
    return {
        "layers": layers,
        "final": final,
        "output": turn.output,
        "error": turn.error,
        "events": [str(e) for e in turn.events],
    }


def _instance(result: InstanceResult, verdict: Verdict | None, namer: Namer) -> dict[str, Any]:
    return {
        "id": result.id,
        "turns": result.turns,
        "references": result.references,
        "outputs": result.outputs,
        "error": result.error,
        "calls": result.calls,
        "input_tokens": result.input_tokens,
        "output_tokens": result.output_tokens,
        "seconds": result.seconds,
        "cost_usd": dollars(c.cost_usd for c in result.trace.calls()),
        "trace": [_turn(t, namer) for t in result.trace.turns],
        "verdict": dataclasses.asdict(verdict) if verdict else None,
    }
