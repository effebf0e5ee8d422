"""The faults an adversarial audit found, each through the real `openai` SDK against the loopback
fault server: a body cut short, empty and cut answers, no usage, a key refused in mid-run, a key
echoed in part, a Retry-After of a day, and Hydra's own line on a crash."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from moa.catalogue import Catalogue
from moa.client import ModelClient
from moa.errors import ConfigError
from moa.limits import EndpointLimits
from moa.providers.openai_compat import parse_completion, retry_after_seconds
from moa.redact import MASK, fragment_length, scrub
from moa.tokens import estimate_prompt, estimate_tokens
from moa.trace import CallTrace, TraceError
from moa.types import ChatMessage, Completion, GenerateConfig, TokenLogprob, mend
from tests.kit.cli import (
    SHARED_DATA,
    cache_file,
    command,
    environment,
    ledger,
    read_jsonl,
    run,
    run_dir,
)
from tests.kit.fakeserver import FakeServer, FaultPlan, ModelProfile, serve_in_thread

from .conftest import make_client

CONFIG = GenerateConfig(temperature=0.7, max_tokens=16)
USER: list[ChatMessage] = [{"role": "user", "content": "Name a colour."}]
KEY = "sk-planted-abcdefghijklmno"  # 26 characters, as the audit's
PRICED = Catalogue({"m": {"address": "fake/m", "price_in": 1.0, "price_out": 2.0}}, ["fake"])


def questions(n: int) -> list[list[ChatMessage]]:
    return [[{"role": "user", "content": f"question {i}"}] for i in range(n)]


async def ask(
    tmp_path: Path,
    faults: FaultPlan,
    *,
    messages: list[ChatMessage] = USER,
    times: int = 1,
    **limits: Any,
) -> tuple[FakeServer, ModelClient, list[Any]]:
    """The same call `times` times, one after the other, on a fresh client."""
    server = FakeServer(default=ModelProfile(min_tokens=5, max_tokens=12), faults=faults)
    with serve_in_thread(server) as url:
        client = make_client(url, tmp_path / "c.sqlite", **limits)
        client.catalogue = PRICED
        outcomes = [await client.generate("fake/m", messages, CONFIG) for _ in range(times)]
        await client.aclose()
    return server, client, outcomes


# A body cut short of its Content-Length


async def test_a_body_cut_short_of_its_content_length_is_retried(tmp_path: Path) -> None:
    server, _, (outcome,) = await ask(tmp_path, FaultPlan(script=["short_body"]))
    assert outcome.ok and outcome.text.startswith("answer ")
    assert outcome.record.attempts == 2 and len(server.log) == 2


async def test_a_body_cut_short_says_so(tmp_path: Path) -> None:
    _, _, (outcome,) = await ask(tmp_path, FaultPlan(script=["short_body"]), max_attempts=1)
    error = outcome.record.error or ""
    assert error.startswith(
        "transient: response body cut short: the connection closed before its Content-Length "
        "(received "
    ), error


# Empty and cut answers


async def test_empty_and_cut_answers_are_kept_and_marked_by_default(tmp_path: Path) -> None:
    faults = FaultPlan(script=["empty_content", "length", "ok"])
    server = FakeServer(default=ModelProfile(min_tokens=5, max_tokens=12), faults=faults)
    with serve_in_thread(server) as url:
        client = make_client(url, tmp_path / "d.sqlite")
        outcomes = [await client.generate("fake/m", m, CONFIG) for m in questions(3)]
        again = await client.generate("fake/m", questions(3)[1], CONFIG)  # from the cache
        await client.aclose()
    empty, cut, whole = (o.record for o in outcomes)
    assert all(o.ok for o in outcomes) and outcomes[0].text == ""
    assert (empty.empty, empty.truncated, empty.finish_reason) == (True, False, "stop")
    assert (cut.empty, cut.truncated, cut.finish_reason) == (False, True, "length")
    assert not whole.empty and not whole.truncated and whole.finish_reason == "stop"
    assert again.record.cached and again.record.truncated  # the mark is the answer's
    totals = client.ledger.totals
    assert (totals.empty, totals.truncated, totals.errors) == (1, 2, 0)
    trace = CallTrace.of("fake/m", 0, outcomes[1])
    assert (trace.finish_reason, trace.truncated, trace.empty) == ("length", True, False)


async def test_a_cut_answer_fails_the_call_when_asked_and_stays_cached(tmp_path: Path) -> None:
    server, client, (first, second) = await ask(
        tmp_path, FaultPlan(rates={"length": 1.0}), times=2, on_truncated="fail"
    )
    for outcome in (first, second):
        assert not outcome.ok
        assert outcome.record.error == (
            'permanent: the answer was cut off at max_tokens=16 (finish_reason "length") '
            "and on_truncated=fail"
        )
        assert outcome.record.truncated
    assert len(server.log) == 1 and second.record.cached  # failed again without paying
    assert first.record.billed and first.record.cost_usd > 0  # the answer was paid for
    assert client.ledger.totals.errors == 2 and client.ledger.totals.truncated == 2


async def test_an_empty_answer_fails_the_call_when_asked(tmp_path: Path) -> None:
    _, _, (outcome,) = await ask(tmp_path, FaultPlan(script=["empty_content"]), on_empty="fail")
    assert not outcome.ok and outcome.record.empty
    assert outcome.record.error == "permanent: the answer was empty and on_empty=fail"


async def test_an_empty_answer_is_asked_again_when_asked_and_both_are_paid(
    tmp_path: Path,
) -> None:
    server, client, (outcome,) = await ask(
        tmp_path, FaultPlan(script=["empty_content", "ok"]), on_empty="retry"
    )
    assert outcome.ok and outcome.text.startswith("answer ") and not outcome.record.empty
    assert outcome.record.attempts == 2 and len(server.log) == 2
    assert all(r.messages == USER for r in server.log)  # the same request again
    # both answers' tokens: the empty one was paid all the same
    assert outcome.record.input_tokens == 2 * (len(USER[0]["content"]) // 4 + 1)
    assert client.ledger.totals.retries == 1


async def test_empty_answers_past_max_attempts_end_as_an_error(tmp_path: Path) -> None:
    server, _, (first, second) = await ask(
        tmp_path, FaultPlan(rates={"empty_content": 1.0}), times=2, on_empty="retry", max_attempts=3
    )
    assert not first.ok and first.record.attempts == 3 and len(server.log) == 3
    assert (
        first.record.error
        == "permanent: the answer was empty after 3 attempt(s) and on_empty=retry"
    )
    # the last empty answer was cached: asking again sends nothing
    assert (
        second.record.cached
        and not second.ok
        and second.record.error
        == (
            "permanent: the answer was empty (an answer from the cache: it is not asked again) "
            "and on_empty=retry"
        )
    )


async def test_the_policies_never_touch_a_judges_or_rankers_answer(tmp_path: Path) -> None:
    for role in ("judge", "ranker"):
        faults = FaultPlan(script=["length", "empty_content"])
        server = FakeServer(default=ModelProfile(min_tokens=5, max_tokens=12), faults=faults)
        with serve_in_thread(server) as url:
            client = make_client(
                url, tmp_path / f"{role}.sqlite", on_truncated="fail", on_empty="retry"
            )
            cut, empty = [
                await client.generate("fake/m", m, CONFIG, tags={"role": role})
                for m in questions(2)
            ]
            await client.aclose()
        assert cut.ok and cut.record.truncated, role
        assert empty.ok and empty.record.empty and empty.record.attempts == 1, role
        assert len(server.log) == 2


def test_the_policies_are_endpoint_settings_checked_before_any_call() -> None:
    assert EndpointLimits().on_truncated == "keep" and EndpointLimits().on_empty == "keep"
    limits = EndpointLimits.from_spec("x", {"on_truncated": "fail", "on_empty": "retry"})
    assert (limits.on_truncated, limits.on_empty) == ("fail", "retry")
    assert EndpointLimits.from_spec("x", {"on_empty": None}).on_empty == "keep"
    with pytest.raises(ConfigError) as caught:
        EndpointLimits.from_spec("x", {"on_truncated": "retry"})
    assert str(caught.value) == "endpoints.x.on_truncated='retry' is not one of keep, fail"


# No usage


async def test_an_answer_without_usage_is_estimated_priced_and_marked(tmp_path: Path) -> None:
    _, client, (outcome, cached) = await ask(tmp_path, FaultPlan(script=["no_usage"]), times=2)
    record = outcome.record
    assert outcome.ok and record.tokens_estimated and cached.record.tokens_estimated
    assert record.input_tokens == estimate_prompt(USER) > 0
    assert record.output_tokens == estimate_tokens(outcome.text) > 0
    assert record.cost_usd == pytest.approx(
        (record.input_tokens * 1.0 + record.output_tokens * 2.0) / 1e6
    )
    totals = client.ledger.totals
    assert totals.tokens_estimated == 2 and totals.cost_usd == pytest.approx(record.cost_usd)


def test_usage_that_cannot_be_right_is_estimated_too() -> None:
    def body(usage: object) -> dict[str, Any]:
        message = {"role": "assistant", "content": "a few words"}
        return {"choices": [{"message": message, "finish_reason": "stop"}], "usage": usage}

    exact = parse_completion(body({"prompt_tokens": 9, "completion_tokens": 3}), CONFIG, USER)
    assert (exact.input_tokens, exact.output_tokens, exact.tokens_estimated) == (9, 3, False)
    for usage in (None, {}, {"prompt_tokens": 0, "completion_tokens": 0}, "garbage"):
        estimated = parse_completion(body(usage), CONFIG, USER)
        assert estimated.tokens_estimated, usage
        assert estimated.input_tokens == estimate_prompt(USER)
        assert estimated.output_tokens == estimate_tokens("a few words")
    # stored in the cache only when set, so every cached answer's row stays as it was
    assert "tokens_estimated" not in exact.to_json()
    assert Completion.from_json(estimated.to_json()) == estimated


# A key refused in mid-run


@pytest.mark.parametrize("status", ["401", "403"])
async def test_a_key_refused_in_mid_run_stops_the_endpoint_at_once(
    tmp_path: Path, status: str
) -> None:
    server = FakeServer(faults=FaultPlan.after(3, FaultPlan(rates={status: 1.0})))
    with serve_in_thread(server) as url:
        client = make_client(url, tmp_path / "c.sqlite")
        before = [await client.generate("fake/m", m, CONFIG) for m in questions(3)]
        after = [await client.generate("fake/m", m, CONFIG) for m in questions(10)[3:]]
        # calls queued behind the refused one are not sent either, nor its retries
        queued = await asyncio.gather(
            *(client.generate("fake/other", m, CONFIG) for m in questions(20))
        )
        hit = await client.generate("fake/m", questions(1)[0], CONFIG)  # answered before
        await client.aclose()
    assert all(o.ok for o in before) and hit.ok and hit.record.cached
    assert len(server.log) == 4 and server.log[-1].status == int(status)
    first, *rest = after
    assert first.record.error is not None and first.record.error.startswith(f"permanent {status}:")
    assert first.record.attempts == 1 and not first.record.unsent
    why = client.stopped()["fake"]
    assert why.startswith(f"refused the key ({status}: ")
    expected = f"permanent: endpoint fake {why}: no more calls are sent to it"
    for outcome in [*rest, *queued]:
        record = outcome.record
        assert not outcome.ok and record.error == expected
        assert record.unsent and record.attempts == 0 and not record.billed
    assert client.ledger.totals.unsent == len(rest) + len(queued)


async def test_calls_waiting_for_a_slot_when_the_key_is_refused_are_not_sent(
    tmp_path: Path,
) -> None:
    server = FakeServer(
        default=ModelProfile(ttft_s=0.05), faults=FaultPlan.after(1, FaultPlan(rates={"401": 1}))
    )
    with serve_in_thread(server) as url:
        client = make_client(url, tmp_path / "c.sqlite", max_concurrency=1)
        outcomes = await asyncio.gather(
            *(client.generate("fake/m", m, CONFIG) for m in questions(12))
        )
        await client.aclose()
    assert len(server.log) == 2  # one answered, one refused: nothing after it
    assert sum(o.ok for o in outcomes) == 1
    assert sum(o.record.unsent for o in outcomes) == 10


# A key echoed in part


async def test_a_401_that_echoes_most_of_the_key_shows_none_of_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLANTED_API_KEY", KEY)
    server = FakeServer(faults=FaultPlan(rates={"401_key_prefix": 1.0}))
    with serve_in_thread(server) as url:
        client = make_client(url, tmp_path / "c.sqlite", api_key_env="PLANTED_API_KEY")
        outcome = await client.generate("fake/m", USER, CONFIG)
        await client.aclose()
    assert outcome.record.error == (
        f"permanent 401: Incorrect API key provided: {MASK}... (invalid_api_key)"
    )
    assert KEY[: fragment_length(KEY)] not in json.dumps(outcome.record.to_json())
    assert KEY[:8] not in str(client.stopped())


def test_any_long_enough_fragment_of_a_secret_is_scrubbed() -> None:
    other = "tok-0123456789abcdefghij0123456789"
    assert fragment_length(KEY) == 13 and fragment_length(other) == 17
    assert fragment_length("short-8c") == 8 and fragment_length("abc") == 3
    secrets = [KEY, other]
    assert scrub(f"key {KEY[:19]}...", secrets) == f"key {MASK}..."
    assert scrub(f"key {KEY[5:18]}!", secrets) == f"key {MASK}!"  # from the middle too
    assert scrub(f"key {KEY[5:17]}!", secrets) == f"key {KEY[5:17]}!"  # 12: too short to matter
    assert scrub(f"{KEY}{other}", secrets) == MASK  # adjacent secrets: one mask
    assert scrub(f"a {KEY[-14:]} b {other[:20]} c {KEY}", secrets) == f"a {MASK} b {MASK} c {MASK}"
    assert scrub("sk-proj-ab********wxyz said no", []) == f"{MASK} said no"
    assert scrub("nothing here", secrets) == "nothing here" and scrub("x", ["", "y"]) == "x"
    # a secret made of one repeated piece
    assert scrub("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", ["a" * 20]) == MASK


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
def test_a_run_whose_key_is_echoed_in_part_writes_and_prints_none_of_it(tmp_path: Path) -> None:
    server = FakeServer(faults=FaultPlan(rates={"401_key_prefix": 1.0}))
    with serve_in_thread(server) as url:
        done = run(
            command(tmp_path, url, "benchmark.limit=2", max_attempts=2, max_concurrency=1),
            environment(TOGETHER_API_KEY=KEY),
        )
    assert done.returncode == 1, done.stderr
    fragment = KEY[: fragment_length(KEY)]
    written = [
        p for p in tmp_path.rglob("*") if p.is_file() and fragment.encode() in p.read_bytes()
    ]
    assert not written and fragment not in done.stdout + done.stderr
    records = ledger(tmp_path)
    # one call at a time: the first refusal stopped the endpoint, the 11 other proposals of the
    # two instances failed without a request
    assert len(server.log) == 1 and len(records) == 12
    assert sum(r["unsent"] for r in records) == 11


# A Retry-After of a day


async def test_a_retry_after_of_a_day_ends_the_call_at_once(tmp_path: Path) -> None:
    server, _, (outcome,) = await ask(tmp_path, FaultPlan(script=["429_long_retry_after"]))
    assert not outcome.ok and outcome.record.attempts == 1 and len(server.log) == 1
    assert outcome.record.error == (
        "transient 429: the server asked to retry after 86400 s, more than "
        "retry_after_max_s=300 (it said: rate limited: come back tomorrow (rate_limit))"
    )


def test_retry_after_values_past_reason_are_read_safely() -> None:
    assert retry_after_seconds({"retry-after": "1e400"}) == math.inf
    assert retry_after_seconds({"retry-after": "nan"}) is None
    assert retry_after_seconds({"retry-after": "-5"}) == 0.0
    assert retry_after_seconds({"retry-after-ms": "nan", "retry-after": "2"}) == 2.0
    assert retry_after_seconds({"retry-after": "not a date"}) is None
    later = retry_after_seconds({"retry-after": "Fri, 31 Dec 9999 23:59:59 GMT"})
    assert later is not None and later > 1e9


# The fault server's plans


def test_a_fault_plan_can_change_after_so_many_requests() -> None:
    # as `python -m tests.kit.fakeserver --config` reads it
    conf: dict[str, Any] = json.loads(
        '{"script": ["500"], "switch_after": 2, "then": {"rates": {"401": 1.0}}}'
    )
    plan = FaultPlan(**conf)
    assert plan.then == FaultPlan(rates={"401": 1.0})
    server = FakeServer(faults=plan)
    assert [server._fault() for _ in range(4)] == ["500", None, "401", "401"]
    later = FakeServer(faults=FaultPlan.after(1, FaultPlan(script=["403"])))
    assert [later._fault() for _ in range(3)] == [None, "403", None]
    with pytest.raises(ValueError):
        FaultPlan(rates={"402": 1.0})


# Marks in the run's files, and Hydra's line


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
def test_a_run_marks_its_cut_empty_and_estimated_answers_in_its_files(tmp_path: Path) -> None:
    faults = FaultPlan(script=["length", "empty_content", "no_usage"])
    server = FakeServer(default=ModelProfile(min_tokens=5, max_tokens=30), faults=faults)
    with serve_in_thread(server) as url:
        done = run(command(tmp_path, url, "benchmark.limit=1"))
    assert done.returncode == 0, done.stderr
    records = ledger(tmp_path)
    marked = {
        name: sum(r[name] for r in records) for name in ("truncated", "empty", "tokens_estimated")
    }
    assert marked == {"truncated": 1, "empty": 1, "tokens_estimated": 1}
    (row,) = read_jsonl(run_dir(tmp_path) / "traces.jsonl")
    calls = [c for turn in row["trace"]["turns"] for layer in turn["layers"] for c in layer]
    assert sum(c["truncated"] for c in calls) == 1 and sum(c["empty"] for c in calls) == 1
    assert sum(c["tokens_estimated"] for c in calls) == 1


def test_mending_joins_split_pairs_replaces_lone_halves_and_marks_the_answer() -> None:
    assert mend("a\ud83d\ude00b") == "a\U0001f600b" and mend("\ude00 \ud83d") == "\ufffd \ufffd"
    token = TokenLogprob("\ud83d", -0.1, (("\ud83d", -0.1), ("m", -2.0)))
    mended = Completion("m", logprobs=(token,)).mended()
    assert mended.repaired and mended.logprobs == (
        TokenLogprob("\ufffd", -0.1, (("\ufffd", -0.1), ("m", -2.0))),
    )
    assert Completion.from_json(mended.to_json()) == mended
    clean = Completion("fine", logprobs=(TokenLogprob("m", math.nan),))
    assert clean.mended() is clean and "repaired" not in clean.to_json()


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
def test_a_lone_surrogate_in_an_answer_is_mended_and_marked_and_never_wedges_a_run(
    tmp_path: Path,
) -> None:
    """`"\\ud83d"` is valid JSON but has no UTF-8 form: the answer is kept with U+FFFD in its
    place, marked, and the next layer is sent; so is one a cache stored before answers were
    checked, without a request."""
    server = FakeServer(default=ModelProfile(min_tokens=5, max_tokens=30))
    server.faults = FaultPlan(script=["surrogate"])
    with serve_in_thread(server) as url:
        done = run(command(tmp_path, url, "benchmark.limit=1"))
        assert done.returncode == 0, done.stderr
        assert "answers: 1 with lone surrogates replaced by U+FFFD" in done.stdout
        (mended,) = [r for r in ledger(tmp_path) if r["repaired"]]
        (row,) = read_jsonl(run_dir(tmp_path) / "traces.jsonl")
        calls = [c for turn in row["trace"]["turns"] for layer in turn["layers"] for c in layer]
        (traced,) = [c for c in calls if c["repaired"]]
        assert traced["key"] == mended["key"] and traced["text"].endswith(" \ufffd")
        again = run(command(tmp_path, url, "benchmark.limit=1"))
        assert again.returncode == 0 and "0 calls" in again.stdout, again.stderr

        # The answer as an earlier version stored it: the surrogate escaped, its checksum right.
        with sqlite3.connect(cache_file(tmp_path)) as db:
            (stored,) = db.execute(
                "SELECT completion FROM calls WHERE key = ?", (mended["key"],)
            ).fetchone()
            assert json.loads(stored)["repaired"] is True
            old = json.loads(stored)
            del old["repaired"]
            old["text"] = old["text"].replace("\ufffd", "\ud83d")
            old_form = json.dumps(old)
            db.execute(
                "UPDATE calls SET completion = ?, sha256 = ? WHERE key = ?",
                (old_form, hashlib.sha256(old_form.encode()).hexdigest(), mended["key"]),
            )
        shutil.rmtree(run_dir(tmp_path))
        sent = len(server.log)
        third = run(command(tmp_path, url, "benchmark.limit=1"))
    assert third.returncode == 0, third.stderr
    assert len(server.log) == sent  # every call from the cache
    records = ledger(tmp_path)
    assert all(r["cached"] for r in records)
    assert [r["key"] for r in records if r["repaired"]] == [mended["key"]]


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
def test_an_unknown_answer_policy_is_refused_before_any_call(tmp_path: Path) -> None:
    done = run(command(tmp_path, "http://127.0.0.1:9/v1", "++endpoints.together.on_empty=redo"))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "moa-bench: error: endpoints.together.on_empty='redo' is not one of keep, retry, fail"
    )


def test_a_crash_prints_hydras_line_and_the_traceback_scrubbed(tmp_path: Path) -> None:
    """A real Hydra app that crashes, run by `eval.errors.run_cli` as `moa-bench` is."""
    typed = "sk-typed-on-the-command-line-7f3e"
    script = textwrap.dedent(
        """
        import os, hydra
        from eval.errors import run_cli

        @hydra.main(version_base="1.3", config_path=None)
        def app(cfg):
            raise RuntimeError("boom with " + os.environ["CRASH_API_KEY"][:20])

        run_cli(app)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, f"+token={typed}", "+seed=1"],
        env=environment(CRASH_API_KEY=KEY),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 1
    assert f"Error executing job with overrides: ['+token={MASK}', '+seed=1']" in done.stderr
    assert "Traceback (most recent call last)" in done.stderr
    assert f"RuntimeError: boom with {MASK}" in done.stderr
    assert typed[:8] not in done.stderr and KEY[:13] not in done.stderr


def test_a_trace_written_before_the_marks_reads_back_and_a_broken_one_is_refused() -> None:
    old = {
        "model": "together/a",
        "sample": 0,
        "key": "k1",
        "text": "an answer",
        "error": None,
        "input_tokens": 10,
        "output_tokens": 5,
        "latency_s": 0.2,
        "cached": False,
        "attempts": 1,
    }
    call = CallTrace.from_json(old)
    assert (call.finish_reason, call.truncated, call.empty, call.tokens_estimated) == (
        None,
        False,
        False,
        False,
    )
    marked = {**old, "finish_reason": "length", "truncated": True}
    assert CallTrace.from_json(marked).truncated
    with pytest.raises(TraceError, match="a call lacks attempts"):
        CallTrace.from_json({k: v for k, v in old.items() if k != "attempts"})
