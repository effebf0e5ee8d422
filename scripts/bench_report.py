"""The bench's printed figures and PASS/FAIL lines, each beside the same figure of the checkout
before the change (`--before`) when the invocation measured one: pure functions of the rows."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Row = Mapping[str, Any]


def pair(after: float, before: float | None, spec: str, unit: str = "") -> str:
    """`0.84 s`, or `3.26 -> 0.84 s` when there is a before figure."""
    if before is None:
        return f"{after:{spec}}{unit}"
    return f"{before:{spec}} -> {after:{spec}}{unit}"


def show(row: Row, before: Row | None = None) -> str:
    """One run's figures as lines; each a before -> after pair when `before` is given."""

    def f(key: str, spec: str = ".2f", unit: str = "s") -> str:
        old = before.get(key) if before is not None else None
        return pair(row[key], old, spec, unit)

    name = row["run"]
    if "bound_s" not in row:  # a command timed whole: the plan, the demo
        rss = f("peak_rss_mb", ".0f", " MB")
        return f"{name}: wall {f('wall_s')}, CPU {f('cpu_s')}, peak RSS {rss}"
    lines = [
        f"{name}: wall {f('wall_s')} = {f('to_first_request_s')} to the first request + "
        f"{f('span_s')} of requests + {f('after_last_answer_s')} after the last answer",
        f"  bound {f('bound_s')} (work {f('work_bound_s')}, chain {f('chain_bound_s')}): "
        f"efficiency {f('efficiency', '.3f', '')} "
        f"({f('span_efficiency', '.3f', '')} over the requests' span)",
        f"  {row['calls']} calls, {row['cache_hits']} cache hits, {row['requests']} requests; "
        f"peak RSS {f('peak_rss_mb', '.0f', ' MB')}; CPU {f('cpu_s')} "
        f"= {f('cpu_ms_per_call', '.3f', ' ms/call')}",
    ]
    if "true_limit" in row:
        lines.append(
            f"  server takes {row['true_limit']} per model (429 above), config says "
            f"{row['configured_limit']}: {row['failed_instances']} of {row['instances']} "
            f"instances failed, {row['failed_calls']} calls failed, {row['refusals']} requests "
            f"refused (429); exit code {row['exit_code']}",
        )
        lines.append(
            f"  the same run configured at the true limit: wall {f('known_limit_wall_s')}, "
            f"efficiency {f('known_limit_efficiency', '.3f', '')} (learned/known wall "
            f"{row['wall_s'] / row['known_limit_wall_s']:.3f})"
        )
    if "marginal_cpu_ms_per_call" in row:
        lines[-1] += (
            f", of which {f('fixed_cpu_s')} fixed (one instance alone): "
            f"{f('marginal_cpu_ms_per_call', '.3f', ' ms')} per further call"
        )
    if "peer" in row:
        lines.append(peer_line(row, row["peer"]))
    return "\n".join(lines)


def peer_line(row: Row, peer: Row) -> str:
    """Another program on the same server and work, beside this run (the after)."""
    if "error" in peer:
        return f"  {peer['name']}: could not run here: {peer['error']}"
    ratio = peer["wall_s"] / row["wall_s"]
    verdict = f"{ratio:.2f}x faster" if ratio >= 1 else f"{1 / ratio:.2f}x slower"
    return (
        f"  {peer['name']} on the same server and work: wall {peer['wall_s']:.2f}s "
        f"({peer['to_first_request_s']:.2f}s to the first request, {peer['requests']} requests, "
        f"CPU {peer['cpu_s']:.2f}s, efficiency {peer['efficiency']:.3f}); ours "
        f"{row['wall_s']:.2f}s: {verdict}"
    )


@dataclass(frozen=True)
class Check:
    """One target: its run, what it says, the figure it reads, and whether a figure meets it."""

    run: str
    label: str
    figure: Callable[[Row], float]
    passes: Callable[[float], bool]
    spec: str = ".2f"
    unit: str = ""
    floor: str | None = None  # the same figure of the SDK alone (`bench_sdk`), if it has one


@dataclass(frozen=True)
class Verdict:
    label: str
    ok: bool
    after: float
    before: float | None
    spec: str
    unit: str
    floor: float | None = None

    def line(self) -> str:
        figures = f"{self.after:{self.spec}}{self.unit}"
        if self.before is not None:
            figures = f"before {self.before:{self.spec}}{self.unit}, after {figures}"
        if self.floor is not None:
            figures += f"; the openai SDK alone: {self.floor:{self.spec}}{self.unit}"
        return f"{'PASS' if self.ok else 'FAIL'}  {self.label}  ({figures})"


def sdk_line(floor: Row) -> str:
    """The SDK alone's figures (`bench_sdk.sdk_floor`)."""
    return (
        f"sdk: {floor['name']}: {floor['post_to_first_request_s']:.2f}s to the first request; "
        f"CPU per further call {floor['post_marginal_cpu_ms_per_call']:.3f} ms on the lightest "
        f"path (ours), {floor['create_marginal_cpu_ms_per_call']:.3f} ms on "
        "chat.completions.create"
    )


def _marginal(row: Row) -> float:
    return float(row["marginal_cpu_ms_per_call"])


# The throughput, endpoint-trust and fixed-cost issues' targets, in the order they print.
CHECKS = (
    *(
        check
        for name in ("alpaca_eval", "mt_bench")
        for check in (
            Check(name, "efficiency >= 0.9", lambda r: r["efficiency"], lambda v: v >= 0.9, ".3f"),
            Check(
                name, "<= 1.2 ms harness CPU per call (marginal)", _marginal,
                lambda v: v <= 1.2, ".3f", " ms", "post_marginal_cpu_ms_per_call",
            ),
        )
    ),
    Check(
        "alpaca_eval", "peak RSS < 500 MB", lambda r: r["peak_rss_mb"], lambda v: v < 500, ".0f",
        " MB",
    ),
    Check(
        "alpaca_eval", "start-up to the first request <= 1.5 s",
        lambda r: r["to_first_request_s"], lambda v: v <= 1.5, unit=" s",
        floor="post_to_first_request_s",
    ),
    Check(
        "prompt", "query (first request to answer) <= 1.1 x chain",
        lambda r: r["span_s"] / r["chain_bound_s"], lambda v: v <= 1.1, ".3f", "x",
    ),
    Check(
        "prompt", "start-up to the first request <= 1 s", lambda r: r["to_first_request_s"],
        lambda v: v <= 1, unit=" s", floor="post_to_first_request_s",
    ),
    Check(
        "judge", "whole command >= 0.8 of the bound", lambda r: r["efficiency"],
        lambda v: v >= 0.8, ".3f",
    ),
    Check("plan", "wall <= 15 s", lambda r: r["wall_s"], lambda v: v <= 15, unit=" s"),
    Check(
        "rate_limit", "no failed instance", lambda r: r["failed_instances"], lambda v: v == 0,
        ".0f", " failed",
    ),
    # a slow start per model: an unknown limit is found without a full-width burst of 429s
    Check(
        "rate_limit", ">= 0.9 of the bound over the requests' span",
        lambda r: r["span_efficiency"], lambda v: v >= 0.9, ".3f",
    ),
    Check(
        "rate_limit", "wall <= 1.1 x the run configured at the true limit",
        lambda r: r["wall_s"] / r["known_limit_wall_s"], lambda v: v <= 1.1, ".3f", "x",
    ),
    Check("demo", "wall <= 180 s", lambda r: r["wall_s"], lambda v: v <= 180, ".0f", " s"),
)  # fmt: skip


# The runs with a target the SDK alone floors (`Check.floor`): the bench times it when one ran.
FLOORED = frozenset(check.run for check in CHECKS if check.floor)


def verdicts(
    rows: Mapping[str, Row], before: Mapping[str, Row] | None = None, floor: Row | None = None
) -> list[Verdict]:
    """Each target whose run was made, judged on the after; the before's figure beside it, and
    the SDK alone's when it was measured and the target has one."""
    out = []
    for check in CHECKS:
        if check.run not in rows:
            continue
        value = check.figure(rows[check.run])
        old = before.get(check.run) if before is not None else None
        out.append(
            Verdict(
                f"{check.run}: {check.label}",
                check.passes(value),
                value,
                check.figure(old) if old is not None else None,
                check.spec,
                check.unit,
                floor[check.floor] if floor is not None and check.floor else None,
            )
        )
    return out
