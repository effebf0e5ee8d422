"""The verifiable track end to end: an endpoint that answers each problem with its gold answer
scores 100% on every benchmark through the whole pipeline (generate, judge, native files,
metrics), and one that answers it off by one scores 0%; no judge model is ever called."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from eval.benchmarks.data import Data
from eval.benchmarks.fetch import SOURCES, UrlSource
from eval.benchmarks.gsm8k import Gsm8k
from eval.cli import dispatch
from eval.evaluation import evaluation_for, evaluation_reading
from eval.judges.spec import load_spec
from eval.rundir import RunDir
from eval.verify import cruxeval_prompts
from moa.providers.base import register_provider
from moa.types import ChatMessage, Completion, GenerateConfig
from tests.kit.cli import SHARED_DATA, scripted_config

pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
TRACK = ("gsm8k", "math500", "cruxeval_o", "cruxeval_i")


def gold_text(name: str, instance: Any, off: bool) -> str:
    """The gold answer as a model would state it after the benchmark's prompt; `off` changes
    it just enough to be wrong: the final number plus one, a wrong `\\boxed{}`, a literal
    (or call) wrapped in a list."""
    meta = instance.meta
    if name == "gsm8k":
        if not off:
            return str(meta["solution"])
        head, _, number = str(meta["solution"]).rpartition("####")
        return f"{head}#### {int(number.strip().replace(',', '')) + 1}"
    if name == "math500":
        gold = instance.references[0]
        return f"So the answer is $\\boxed{{{gold} + 1}}$." if off else f"$\\boxed{{{gold}}}$"
    call, output = f"f({meta['input']})", meta["output"]
    if name == "cruxeval_o":
        return f"[ANSWER]\nassert {call} == {f'[{output}]' if off else output}\n"
    return f"[ANSWER]\nassert {f'[{call}]' if off else call} == {output}\n"


class Gold:
    """Answers each benchmark prompt from `answers` (by the last user message)."""

    answers: Mapping[str, str] = {}

    @property
    def identity(self) -> str:
        return "test-verify-gold"

    async def generate(
        self, model: str, messages: Sequence[ChatMessage], config: GenerateConfig, sample: int
    ) -> Completion:
        text = self.answers[messages[-1]["content"]]
        return Completion(text, 10, max(1, len(text) // 4), "stop")

    async def aclose(self) -> None:
        return None


@register_provider("test-verify-gold")
def _gold(endpoint: str, options: Any) -> Gold:
    return Gold()


@pytest.fixture
def answers() -> Iterator[dict[str, str]]:
    table: dict[str, str] = {}
    Gold.answers = table
    yield table
    Gold.answers = {}


def run_track(root: Path, name: str, answers: dict[str, str], off: bool, limit: int) -> Path:
    evaluation = evaluation_for(
        {**load_benchmark_yaml(name), "name": name}, Data(data_dir=str(SHARED_DATA))
    )
    instances = evaluation.load()[:limit]
    answers.clear()
    answers.update({i.turns[0]: gold_text(name, i, off) for i in instances})
    config = scripted_config(
        root,
        f"benchmark={name}",
        f"benchmark.limit={limit}",
        "moa=single",
        "judge=paper",
        "endpoints.scripted.provider=test-verify-gold",
        "preflight.models=false",
    )
    assert asyncio.run(dispatch(config)) == (1 if off else 0) or off
    (run,) = (root / "runs" / name).iterdir()
    return run


def root_of(run: Path) -> Path:
    return run.parents[2]


def load_benchmark_yaml(name: str) -> dict[str, Any]:
    import yaml

    from eval.judges.spec import BENCHMARK_DIR

    loaded: dict[str, Any] = yaml.safe_load((BENCHMARK_DIR / f"{name}.yaml").read_text())
    return loaded


@pytest.mark.parametrize("name", TRACK)
@pytest.mark.parametrize("off", [False, True], ids=["gold", "off_by_one"])
def test_gold_answers_score_all_and_answers_off_by_one_none(
    tmp_path: Path, answers: dict[str, str], name: str, off: bool
) -> None:
    limit = 1319 if name == "gsm8k" else 120
    run = run_track(tmp_path, name, answers, off, limit)
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    values = metrics["extras"]
    assert metrics["judge"] == "scripted/exact-check" and metrics["judge_calls"] == 0
    assert metrics["coverage"] == {"n_expected": limit, "n_judged": limit, "complete": True}
    assert values["scorer_errors"] == 0 and metrics["headline"] == values["accuracy"]
    assert values["accuracy"] == (0.0 if off else 1.0)
    assert 0 <= values["ci_low"] <= values["accuracy"] <= values["ci_high"] <= 1
    native = run / f"{name}_verdicts.jsonl"
    lines = [json.loads(line) for line in native.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == limit
    first = lines[0]
    assert {"id", "answer", "extracted", "gold", "verdict", "why"} <= set(first)
    assert first["verdict"] == ("wrong" if off else "correct") and first["why"]
    outputs = (run / "outputs.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(outputs) == limit
    rescore = scripted_config(root_of(run), "task=rescore", f"rescore.path='{native}'")
    assert asyncio.run(dispatch(rescore)) == 0  # the native file scored again, no model called
    again = evaluation_reading(native)
    assert again.name == name and again.rescore(native)["accuracy"] == values["accuracy"]
    if name == "math500":
        assert set(values["by_subject"]) >= {"Algebra"} and set(values["by_level"]) <= set("12345")
        assert first["subject"] and first["level"]


def test_each_benchmark_names_its_exact_judge_and_a_pinned_source() -> None:
    for name in TRACK:
        spec = load_spec(load_benchmark_yaml(name)["judge_spec"])
        assert spec.kind == "exact" and spec.native_file == f"{name}_verdicts.jsonl"
    for relpath in ("gsm8k/test.jsonl", "cruxeval/cruxeval.jsonl"):
        source = SOURCES[relpath]
        assert isinstance(source, UrlSource) and re.fullmatch(r"[0-9a-f]{64}", source.sha256)
    assert "math500/test.jsonl" in SOURCES


def test_the_prompts_say_how_to_state_the_answer() -> None:
    data = Data(data_dir=str(SHARED_DATA))
    turns = {
        name: evaluation_for({**load_benchmark_yaml(name), "name": name}, data).load()[0].turns[0]
        for name in TRACK
    }
    assert "#### <number>" in turns["gsm8k"]
    assert "\\boxed{}" in turns["math500"]
    assert "assert f(" in turns["cruxeval_o"] and "[ANSWER]" in turns["cruxeval_o"]
    assert "assert f(??) ==" in turns["cruxeval_i"]


def test_a_vote_over_gold_samples_scores_all_and_records_its_tally(
    tmp_path: Path, answers: dict[str, str]
) -> None:
    data = Data(data_dir=str(SHARED_DATA))
    instances = evaluation_for({"name": "math500"}, data).load()[:20]
    answers.update({i.turns[0]: gold_text("math500", i, False) for i in instances})
    config = scripted_config(
        tmp_path, "benchmark=math500", "benchmark.limit=20", "moa=vote", "moa.samples=3",
        "judge=paper", "endpoints.scripted.provider=test-verify-gold", "preflight.models=false",
    )  # fmt: skip
    assert asyncio.run(dispatch(config)) == 0
    (run,) = (tmp_path / "runs" / "math500").iterdir()
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["extras"]["accuracy"] == 1.0
    traces = [json.loads(line) for line in (run / "traces.jsonl").read_text().splitlines()]
    events = [e for t in traces for turn in t["trace"]["turns"] for e in turn["events"]]
    assert len(events) == 20 and all(e["kind"] == "voted" and e["votes"] == 3 for e in events)
    ledger = (run / "calls.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(ledger) == 60  # the proposers' calls only: the vote makes none


def test_the_self_moa_experiment_sweeps_five_methods_over_three_benchmarks() -> None:
    from hydra import initialize_config_dir

    from eval.settings import CONF_DIR
    from eval.suite import compose_points

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        points = compose_points([], ["self_moa_verifiable"])
    names = {(c.benchmark.name, c.spec.name) for c in points}
    assert len(points) == len(names) == 15 and all(c.repeats == 3 for c in points)
    assert {b for b, _ in names} == {"math500", "cruxeval_o", "gsm8k"}
    assert {n for _, n in names} == {"moa", "self_moa", "self_moa_seq", "vote",
                                     "single_qwen1.5-110b"}  # fmt: skip


def test_the_report_gives_self_moas_table_with_a_test_per_pair_of_rows(
    tmp_path: Path, answers: dict[str, str]
) -> None:
    from eval.report.build import write_report

    for name in ("gsm8k", "cruxeval_o"):
        data = Data(data_dir=str(SHARED_DATA))
        instances = evaluation_for({"name": name}, data).load()[:12]
        answers.update({i.turns[0]: gold_text(name, i, False) for i in instances})
        for moa in ("moa=single", "moa=vote"):
            config = scripted_config(
                tmp_path, f"benchmark={name}", "benchmark.limit=12", moa, "moa.samples=3",
                "repeats=2", "judge=paper", "endpoints.scripted.provider=test-verify-gold",
                "preflight.models=false",
            )  # fmt: skip
            assert asyncio.run(dispatch(config)) == 0
    report = write_report(tmp_path / "runs", tmp_path / "report")
    table = (tmp_path / "report" / "self_moa_table.csv").read_text(encoding="utf-8").splitlines()
    assert table[0].startswith("method,GSM8K,GSM8K n, k,CRUX-O") or "CRUX-O" in table[0]
    assert len(table) == 3 and all("100.0 [" in row and "12, 2" in row for row in table[1:])
    pairs = (tmp_path / "report" / "self_moa_table_pairs.csv").read_text(encoding="utf-8")
    assert len(pairs.splitlines()) == 3  # one pair of rows, on two benchmarks
    assert "Self-MoA's comparison" in str(report)


def test_the_browser_shows_the_gold_the_verdict_and_each_layers_final_answer(
    tmp_path: Path, answers: dict[str, str]
) -> None:
    from eval.view.site import build_site

    data = Data(data_dir=str(SHARED_DATA))
    instances = evaluation_for({"name": "gsm8k"}, data).load()[:3]
    answers.update({i.turns[0]: gold_text("gsm8k", i, False) for i in instances})
    config = scripted_config(
        tmp_path, "benchmark=gsm8k", "benchmark.limit=3", "moa=vote", "moa.samples=2",
        "judge=paper", "endpoints.scripted.provider=test-verify-gold", "preflight.models=false",
    )  # fmt: skip
    assert asyncio.run(dispatch(config)) == 0
    build_site(tmp_path / "runs", tmp_path / "site", data)
    written = "".join(
        p.read_text(encoding="utf-8") for p in (tmp_path / "site").rglob("*") if p.is_file()
    )
    assert "each layer's final answers" in written and "layer 1, " in written
    assert '"gold":"18"' in written and '"verdict":"correct"' in written
    assert "the last `####` line, equal to the gold" in written


class Recording(Gold):
    """The gold endpoint, keeping every request's messages."""

    requests: ClassVar[list[list[ChatMessage]]] = []

    async def generate(
        self, model: str, messages: Sequence[ChatMessage], config: GenerateConfig, sample: int
    ) -> Completion:
        self.requests.append(list(messages))
        return await super().generate(model, messages, config, sample)


@register_provider("test-verify-recording")
def _recording(endpoint: str, options: Any) -> Recording:
    return Recording()


@pytest.mark.parametrize("name", ["cruxeval_o", "gsm8k"])
def test_cruxeval_sends_the_reference_system_message_and_the_others_none(
    tmp_path: Path, answers: dict[str, str], name: str
) -> None:
    """CRUXEval's chat script sends its system message before each prompt; GSM8K's requests
    (like every benchmark's without one) are the user turn alone."""
    evaluation = evaluation_for(
        {**load_benchmark_yaml(name), "name": name}, Data(data_dir=str(SHARED_DATA))
    )
    instances = evaluation.load()[:2]
    answers.update({i.turns[0]: gold_text(name, i, False) for i in instances})
    Recording.requests = []
    config = scripted_config(
        tmp_path,
        f"benchmark={name}",
        "benchmark.limit=2",
        "moa=single",
        "endpoints.scripted.provider=test-verify-recording",
        "preflight.models=false",
    )
    assert asyncio.run(dispatch(config)) == 0
    expected = [
        ([{"role": "system", "content": cruxeval_prompts.SYSTEM}] if name == "cruxeval_o" else [])
        + [{"role": "user", "content": i.turns[0]}]
        for i in instances
    ]
    assert sorted(Recording.requests, key=str) == sorted(expected, key=str)
    (run,) = (tmp_path / "runs" / name).iterdir()
    recorded = json.loads((run / "run.json").read_text(encoding="utf-8"))["prompt"]
    if name == "cruxeval_o":
        assert recorded == {
            "template": cruxeval_prompts.OUTPUT_DIRECT,
            "system": cruxeval_prompts.SYSTEM,
        }
    else:
        assert recorded == {"template": Gsm8k.PROMPT}
    assert RunDir(run).identity().prompt == recorded  # type: ignore[union-attr]
    assert all(
        i.system == (cruxeval_prompts.SYSTEM if name == "cruxeval_o" else None) for i in instances
    )


def test_the_yaml_prompt_is_the_one_sent_and_recorded() -> None:
    section = {**load_benchmark_yaml("math500"), "name": "math500", "prompt": "Q: {question}"}
    evaluation = evaluation_for(section, Data(data_dir=str(SHARED_DATA)))
    first = evaluation.load()[0]
    problem = json.loads((SHARED_DATA / "math500/test.jsonl").read_text().splitlines()[0])
    assert first.turns == ("Q: " + problem["problem"],) and first.system is None
    assert evaluation.recorded_prompt() == {"template": "Q: {question}"}


def test_benchmarks_without_a_prompt_of_their_own_record_none(tmp_path: Path) -> None:
    """Other benchmarks' run.json is as it was: no `prompt` field, and one without it reads."""
    alpaca = evaluation_for({"name": "alpaca_eval", **load_benchmark_yaml("alpaca_eval")})
    assert alpaca.recorded_prompt() is None
    config = scripted_config(tmp_path, "benchmark=mt_bench", "benchmark.limit=1", "moa=single")
    assert asyncio.run(dispatch(config)) == 0
    (run,) = (tmp_path / "runs" / "mt_bench").iterdir()
    data = json.loads((run / "run.json").read_text(encoding="utf-8"))
    assert "prompt" not in data
    assert RunDir(run).identity().prompt is None  # type: ignore[union-attr]
