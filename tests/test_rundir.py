"""The run directory's records: typed round trips, older formats read, damage named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.records import FORMAT, AgentRecord, InstanceResult, RunFileError, RunIdentity, RunMetrics
from eval.rundir import RunDir
from moa.errors import ConfigError
from moa.events import DroppedProposals
from moa.trace import CallTrace, ConversationTrace, TurnTrace


def identity(**changes: object) -> RunIdentity:
    fields: dict[str, object] = {
        "benchmark": "alpaca_eval",
        "variant": "moa_lite",
        "layers": [
            [AgentRecord("together/a", 0, "propose"), AgentRecord("together/b", 0, "propose")]
        ],
        "aggregator": AgentRecord("together/a", 0, "aggregate"),
        "mode": "aggregate",
        "generation": {"temperature": 0.7, "max_tokens": 2048},
        **changes,
    }
    return RunIdentity(**fields)  # type: ignore[arg-type]


def result(instance: str = "7") -> InstanceResult:
    call = CallTrace("together/a", 0, "k1", "an answer", None, 10, 5, 0.2, False, 1)
    failed = CallTrace("together/b", 0, "k2", None, "transient 503: busy", 10, 0, 0.1, False, 3)
    turn = TurnTrace([[call, failed]], call, "an answer", None, [DroppedProposals(1, 1)])
    return InstanceResult(
        instance, ["an answer"], None, 2, 20, 5, 0.3, 1.0, ConversationTrace([turn])
    )


def test_a_result_reads_back_into_the_mixtures_dataclasses(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    line = json.dumps(result().to_json())
    run.traces.write_text(line + "\n" + line[:40], encoding="utf-8")  # and a torn tail
    back = run.finished()["7"]
    assert back == result()
    assert isinstance(back.trace.turns[0].layers[0][1], CallTrace)
    assert back.trace.calls()[1].error == "transient 503: busy"
    assert json.loads(line)["format"] == FORMAT


def test_records_without_a_format_are_read_as_the_first_one(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    old = result().to_json()
    del old["format"]
    run.traces.write_text(json.dumps(old) + "\n", encoding="utf-8")
    assert run.finished()["7"] == result()
    legacy = {**identity().to_json(), "layers": [[["together/a", 0], ["together/b", 0]]],
              "aggregator": ["together/a", 0]}  # fmt: skip
    del legacy["format"]
    run.run_file.write_text(json.dumps(legacy), encoding="utf-8")
    assert run.identity() == identity()
    run.claim(identity())  # an old directory of the same run resumes
    assert json.loads(run.run_file.read_text())["format"] == FORMAT


def test_a_newer_format_is_refused_not_misread(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    newer = {**result().to_json(), "format": FORMAT + 1}
    run.traces.write_text(json.dumps(newer) + "\n", encoding="utf-8")
    with pytest.raises(RunFileError, match=rf"line 1: format {FORMAT + 1} is newer .* upgrade"):
        run.finished()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "holds list"),
        ('{"benchmark": "x"}', "lacks variant, layers"),
    ],
)
def test_a_damaged_or_foreign_run_file_is_named(tmp_path: Path, text: str, problem: str) -> None:
    run = RunDir(tmp_path)
    run.run_file.write_text(text, encoding="utf-8")
    with pytest.raises(RunFileError) as error:
        run.identity()
    assert str(run.run_file) in str(error.value) and problem in str(error.value)


def test_a_damaged_trace_line_is_named(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    good = json.dumps(result().to_json())
    run.traces.write_text(f"{good}\n{{oops\n{good}\n", encoding="utf-8")
    with pytest.raises(RunFileError, match="line 2: not valid JSON"):
        run.finished()
    bad_trace = {**result().to_json(), "trace": {"turns": [{"layers": [[{"model": "m"}]]}]}}
    run.traces.write_text(json.dumps(bad_trace) + "\n", encoding="utf-8")
    with pytest.raises(RunFileError, match="line 1: a call lacks sample"):
        run.finished()


def test_a_different_run_is_refused(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "moa_lite")
    run.claim(identity())
    with pytest.raises(ConfigError, match="holds a different run"):
        run.claim(identity(aggregator=AgentRecord("together/b", 0, "aggregate")))


def test_metrics_name_what_every_judge_writes_and_keep_the_benchmarks_own(
    tmp_path: Path,
) -> None:
    run = RunDir(tmp_path)
    values = {"average": 8.1, "turn_1": 8.4, "failures": {"call": 0, "parse": 1},
              "n_expected": 2, "n_judged": 2, "complete": True, "judge_usd": 0.5}  # fmt: skip
    run.write_metrics(RunMetrics.of("openai/gpt-4", 160, values, headline=8.1))
    on_disk = json.loads(run.metrics_file.read_text())
    assert on_disk["extras"] == {"average": 8.1, "turn_1": 8.4}
    assert on_disk["coverage"] == {"n_expected": 2, "n_judged": 2, "complete": True}
    assert (on_disk["headline"], on_disk["format"]) == (8.1, FORMAT)
    back = run.metrics()
    assert back is not None and back.values == values and back.failures == {"call": 0, "parse": 1}
    assert back == RunMetrics.of("openai/gpt-4", 160, values, headline=8.1)
    v1 = {"judge": "openai/gpt-4", **values, "judge_calls": 160, "format": 1}
    run.metrics_file.write_text(json.dumps(v1), encoding="utf-8")
    old = run.metrics()
    assert old is not None and old.values == values and old.headline is None
    assert old.coverage is not None and old.coverage.complete
    run.metrics_file.write_text('{"win_rate": 3}', encoding="utf-8")
    with pytest.raises(RunFileError, match="not a moa-bench metrics file"):
        run.metrics()


def test_identity_axes() -> None:
    ident = identity()
    assert (ident.n_layers, ident.proposers, ident.aggregator_model) == (
        2, ["together/a", "together/b"], "together/a"
    )  # fmt: skip
