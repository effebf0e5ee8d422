"""What a finished run says at the terminal: per instance (the demo), its totals and notes,
and the judge's metrics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.markup import escape
from rich.table import Table

from eval.commands.output import console, log, say
from eval.generate import Generation
from eval.preflight import gone_line
from eval.run_labels import Namer
from eval.rundir import RunMetrics
from moa.ledger import usd


def show_results(run: Generation, metrics: RunMetrics | None) -> None:
    """Per instance: answer length per turn, calls, tokens, time and the judge's verdict, then
    the start of each final answer."""
    prefs = metrics.get("preference", {}) if metrics else {}
    calls = run.spec.calls_per_turn
    table = Table(title=f"{run.spec.name}: {calls if calls is not None else 'some'} calls per turn")
    # its calls' own time: instances queue for a one-at-a-time model, so the time from an
    # instance's start to its end is mostly waiting for the others
    columns = ["id", "turns", "chars", "calls", "tokens", "model s"]
    if prefs:
        columns.append("judged better")
    for column in columns:
        table.add_column(column, no_wrap=True)
    for inst, r in zip(run.instances, run.results, strict=True):
        lengths = "/".join(str(len(o)) for o in r.outputs) if r.outputs else "failed"
        busy = sum(c.latency_s for c in r.trace.calls())
        row = [r.id, str(len(inst.turns)), lengths, str(r.calls),
               str(r.input_tokens + r.output_tokens), f"{busy:.1f}"]  # fmt: skip
        if prefs:
            row.append(_verdict(prefs.get(r.id)))
        table.add_row(*row)
    console.print(table)
    for r in run.results:  # the start of each final answer, one line each
        if r.outputs:
            excerpt = escape(" ".join(r.outputs[-1].split()))
            line = f"{r.id:>3} ({len(r.outputs[-1]):,} chars): {excerpt}"
            console.print(line, style="dim", no_wrap=True, overflow="ellipsis")
    console.print(
        "model s: the seconds its calls took (the model answers one call at a time, so an "
        "instance's own start-to-end time is mostly waiting for the others)"
        + (
            "; judged better: the judge's preference between the model alone (1) and the "
            "mixture (2), from its token probabilities as alpaca_eval computes it; above 1.5 "
            "the mixture is preferred, below it the model alone."
            if prefs
            else "."
        ),
        style="dim",
    )


def _verdict(preference: float | None) -> str:
    """alpaca_eval's preference: 1 = the model alone wins, 2 = the mixture wins."""
    if preference is None:
        return "-"
    word = "mixture" if preference > 1.5 else "model alone" if preference < 1.5 else "tie"
    return f"{word} ({preference:.2f})"


def summarize(run: Generation, metrics: RunMetrics | None, name: Namer) -> None:
    t = run.totals
    say(
        f"{len(run.results) - len(run.failed)}/{len(run.results)} instances done; "
        f"{t.calls} calls ({t.cached} from cache, {t.requests} sent, {t.retries} retries, "
        f"{t.errors} errors); {t.input_tokens + t.output_tokens:,} tokens; {t.money()}"
    )
    if metrics is not None:
        say(
            f"judge {name.judge(metrics.judge)}: {metrics.judge_calls} calls; "
            f"{usd(metrics.get('judge_usd', 0.0))} paid"
        )
    if marks := t.marks():
        say(marks + " (each is marked in traces.jsonl and calls.jsonl)", "yellow")
    for endpoint, why in run.stopped.items():
        say(f"endpoint {endpoint} {why}: no more calls were sent to it", "red")
    for model, why in run.gone.items():
        say(gone_line(model, why), "red")
    for endpoint, evidence in run.ignoring_n.items():
        say(
            f"endpoint {endpoint} ignores n ({evidence}): the choices it sent are kept, the other "
            "draws went one per request; set supports_n: false for it",
            "yellow",
        )
    say(f"outputs: {run.output_file}")
    say(f"every layer's answers, tokens and costs: {run.run.traces}; the run: {run.run.path}")
    if metrics and "preference" not in metrics.values:  # the demo's: per instance, above
        show_metrics(metrics)
    for note in run.notes(metrics.values if metrics else None):
        say(note)
    if run.failed:
        say(
            f"{len(run.failed)} instance(s) failed (see traces.jsonl); run the same command "
            "again to retry them: completed calls come from the cache.",
            "red",
        )


# Shown elsewhere in the summary (the judge's line), or per instance (the demo's table).
_NOT_IN_TABLE = ("judge_usd", "judge_nominal_usd", "preference")


def metric_rows(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A judge's metrics as (name, value) lines a person reads: numbers to two decimals, a
    group (FLASK's skills, a partial set's, a deduplicated set's) a line per member, counts of
    judge failures on one line."""
    rows: list[tuple[str, str]] = []
    for key, value in values.items():
        name = key.replace("_", " ")
        if key in _NOT_IN_TABLE or value is None:
            continue
        if isinstance(value, Mapping) and key == "failures":
            failed = ", ".join(f"{n} {kind}" for kind, n in value.items() if n)
            rows.append(("judge failures", failed or "none"))
        elif isinstance(value, Mapping):
            rows += [(f"{name}: {k.replace('_', ' ')}", v) for k, v in metric_rows(value)]
        elif isinstance(value, list):
            rows.append((name, ", ".join(str(v) for v in value)))
        elif isinstance(value, float):
            rows.append((name, f"{value:.2f}"))
        else:
            rows.append((name, str(value)))
    return rows


def show_metrics(metrics: RunMetrics) -> None:
    """The judge's metrics as a small table (and a line each in `cli.log`)."""
    say(f"metrics, judged by {metrics.judge}:")
    table = Table()
    table.add_column("metric")
    table.add_column("value", overflow="fold")
    for name, value in metric_rows(metrics.values):
        table.add_row(escape(name), escape(value))
        log.info("metric %s: %s", name, value)
    console.print(table)
