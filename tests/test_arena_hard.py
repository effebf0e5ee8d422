"""Arena-Hard-Auto: the loader on the real files, and the judge's requests equal (as JSON) to
those arena-hard-auto's own `gen_judgment.py` builds, imported with its network call replaced."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import json
import re
import sys
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from eval.benchmarks.base import DataError, Instance
from eval.benchmarks.data import Data
from eval.evaluation import Evaluation, evaluation_for
from eval.judges.games import Games, parse_label
from moa.types import CallOutcome, CallRecord, ChatMessage, Completion, GenerateConfig

from .conftest import SHARED_DATA

pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")

ARENA = SHARED_DATA / "arena_hard"
REFERENCE = ARENA / "reference"
V01_ANSWERS = ARENA / "data/arena-hard-v0.1/model_answer"


class Script:
    """A judge whose answer is `answer(messages)`; it writes down every request."""

    def __init__(self, answer: Callable[[Sequence[ChatMessage]], str | None]) -> None:
        self.answer = answer
        self.calls: list[tuple[list[dict[str, str]], GenerateConfig]] = []

    async def generate(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        *,
        sample: int = 0,
        tags: Mapping[str, str] | None = None,
    ) -> CallOutcome:
        self.calls.append(([dict(m) for m in messages], config))
        text = self.answer(messages)
        record = CallRecord(key="k", model=model, sample=sample)
        if text is None:
            record.error = "permanent 400: bad request"
            return CallOutcome(None, record)
        return CallOutcome(Completion(text, 1, 1), record)


def evaluation(version: str, **settings: Any) -> Evaluation:
    section = {"name": f"arena_hard_{version}", "categories": None, "baseline": None, **settings}
    return evaluation_for(section, Data(data_dir=str(SHARED_DATA)))


def answers(model: str) -> dict[str, str]:
    rows = [json.loads(line) for line in (V01_ANSWERS / f"{model}.jsonl").open()]
    return {r["uid"]: r["messages"][-1]["content"]["answer"] for r in rows}


def test_v01_loads_500_prompts_with_gpt4_0314_as_baseline() -> None:
    instances = evaluation("v0.1").load()
    baseline = answers("gpt-4-0314")
    assert len(instances) == 500 and {i.category for i in instances} == {"arena-hard-v0.1"}
    assert all(i.meta["reference_output"] == baseline[i.id] for i in instances)
    assert {i.meta["reference_generator"] for i in instances} == {"gpt-4-0314"}


def test_v20_hard_prompts_load_offline_and_creative_writing_names_its_missing_baseline() -> None:
    hard = evaluation("v2.0", categories=["hard_prompt"]).load()
    judged = [i for i in hard if "reference_output" in i.meta]
    assert len(hard) == 750 and len(judged) == 500
    assert {i.meta["reference_generator"] for i in judged} == {"o3-mini-2025-01-31"}
    with pytest.raises(DataError, match=r"gemini-2.0-flash-001.jsonl: not found; data_dir"):
        evaluation("v2.0").load()


def test_a_named_baseline_replaces_the_versions_and_a_missing_one_is_one_line() -> None:
    instances = evaluation("v0.1", baseline="gpt-3.5-turbo-0125").load()
    assert {i.meta["reference_generator"] for i in instances} == {"gpt-3.5-turbo-0125"}
    archon = evaluation("v0.1", baseline="claude-3-5-sonnet-20240620")
    with pytest.raises(DataError, match=r"claude-3-5-sonnet-20240620.jsonl: not found; data_dir"):
        archon.load()


def _v01_reference(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """reference/v0.1/gen_judgment.py, its `utils` the v0.1 one, its judge call replaced."""
    monkeypatch.syspath_prepend(str(REFERENCE / "v0.1"))
    monkeypatch.delitem(sys.modules, "utils", raising=False)
    monkeypatch.delitem(sys.modules, "gen_judgment", raising=False)
    module = importlib.import_module("gen_judgment")
    monkeypatch.setattr(
        module, "endpoint_info", {"model_name": "gpt-4-1106-preview"}, raising=False
    )
    return module


def _v01_requests(
    monkeypatch: pytest.MonkeyPatch,
    instances: Sequence[Instance],
    ours: Mapping[str, str],
    reply: Callable[[list[dict[str, str]]], str],
    tmp: Path,
) -> list[dict[str, Any]]:
    """Every request the v0.1 reference sends to judge `ours` against gpt-4-0314."""
    module = _v01_reference(monkeypatch)
    import yaml

    configs = yaml.safe_load((REFERENCE / "v0.1/config/judge_config.yaml").read_text())
    sent: list[dict[str, Any]] = []

    def get_answer(
        model: str,
        conv: list[dict[str, str]],
        temperature: float,
        max_tokens: int,
        endpoint_dict: Any = None,
    ) -> str:
        sent.append(
            {
                "messages": json.loads(json.dumps(conv)),
                "temperature": temperature,
                "max_tokens": max_tokens,
            }
        )
        return reply(conv)

    monkeypatch.setattr(module, "get_answer", get_answer)
    for inst in instances:
        module.judgment(
            question={"question_id": inst.id, "turns": [{"content": inst.turns[0]}]},
            answer={"model_id": "ours", "choices": [{"turns": [{"content": ours[inst.id]}]}]},
            baseline_answer={
                "model_id": "gpt-4-0314",
                "choices": [{"turns": [{"content": inst.meta["reference_output"]}]}],
            },
            reference=None,
            configs=configs,
            endpoint_dict={},
            output_file=str(tmp / "j.jsonl"),
            regex_pattern=re.compile(configs["regex_pattern"]),
        )
    return sent


def _ours_requests(
    kind: Games,
    instances: Sequence[Instance],
    ours: Mapping[str, str],
    reply: Callable[[Sequence[ChatMessage]], str],
) -> list[dict[str, Any]]:
    script = Script(reply)

    async def go() -> None:
        for inst in instances:
            await kind._judge_one(script, "openai/gpt-4-1106-preview", "ours", inst, ours[inst.id])

    asyncio.run(go())
    return [
        {"messages": m, "temperature": c.temperature, "max_tokens": c.max_tokens}
        for m, c in script.calls
    ]


def test_v01_requests_equal_the_references_for_all_500_prompts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ev = evaluation("v0.1")
    instances, ours = ev.load(), answers("gpt-4-0613")
    assert isinstance(ev.judging, Games)
    verdict = "My final verdict is: [[B>A]]"
    theirs = _v01_requests(monkeypatch, instances, ours, lambda conv: verdict, tmp_path)
    mine = _ours_requests(ev.judging, instances, ours, lambda messages: verdict)
    assert len(mine) == 1000 and mine == theirs  # as JSON: 0 and 0.0 are one number


def test_v01_asks_once_more_as_the_reference_does_when_no_label_is_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ev = evaluation("v0.1")
    instances, ours = ev.load()[:3], answers("gpt-4-0613")

    def reply(conv: Sequence[Any]) -> str:  # a label only when asked again
        return "[[A>B]]" if len(conv) > 2 else "I cannot decide yet."

    theirs = _v01_requests(monkeypatch, instances, ours, reply, tmp_path)
    mine = _ours_requests(ev.judging, instances, ours, reply)  # type: ignore[arg-type]
    assert len(mine) == 12 and mine == theirs  # as JSON: 0 and 0.0 are one number
    written = [json.loads(line) for line in (tmp_path / "j.jsonl").open()]
    assert {g["score"] for row in written for g in row["games"]} == {"A>B"}


@pytest.fixture
def v20_reference(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    """reference/v2.0/gen_judgment.py with a stand-in for its `utils.completion` (not in
    ../shared/data: it holds the API clients) and its real `utils.judge_utils`."""
    completion = types.ModuleType("utils.completion")
    for name in ("load_questions", "load_model_answers", "make_config"):
        setattr(completion, name, None)
    completion.get_endpoint = lambda endpoints: None  # type: ignore[attr-defined]
    completion.registered_api_completion = {}  # type: ignore[attr-defined]
    package = types.ModuleType("utils")
    package.__path__ = [str(REFERENCE / "v2.0/utils")]  # type: ignore[attr-defined]
    for name in ("utils", "utils.completion", "utils.judge_utils", "gen_judgment"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setitem(sys.modules, "utils", package)
    monkeypatch.setitem(sys.modules, "utils.completion", completion)
    monkeypatch.syspath_prepend(str(REFERENCE / "v2.0"))
    yield importlib.import_module("gen_judgment")


@pytest.mark.parametrize("category", ["hard_prompt", "creative_writing"])
def test_v20_requests_equal_the_references_on_a_sample(
    v20_reference: types.ModuleType, category: str
) -> None:
    import yaml

    ev = evaluation("v2.0", categories=["hard_prompt"])  # gemini's answers are not in ../shared
    instances = [
        i
        if "reference_output" in i.meta
        else dataclasses.replace(
            i,
            meta={
                "reference_output": f"baseline's answer to {i.id}",
                "reference_generator": "gemini-2.0-flash-001",
            },
        )
        for i in ev.load()
        if i.category == category
    ][::25]
    configs = yaml.safe_load((ARENA / "config/arena-hard-v2.0.yaml").read_text())
    sent: list[dict[str, Any]] = []

    def complete(**kwargs: Any) -> dict[str, str]:
        sent.append({k: kwargs[k] for k in ("messages", "temperature", "max_tokens")})
        return {"answer": "[[A>B]]"}

    v20_reference.registered_api_completion["fake"] = complete
    ours = {i.id: f"our answer to {i.id} {{not a field}}" for i in instances}
    for inst in instances:
        question = {"uid": inst.id, "category": inst.category, "prompt": inst.turns[0]}
        baseline = {"messages": [{"content": {"answer": inst.meta["reference_output"]}}]}
        answer = {"messages": [{"content": {"answer": ours[inst.id]}}]}
        for a, b in ((baseline, answer), (answer, baseline)):
            v20_reference.pairwise_judgment(
                question, a, b, None, configs, {"endpoints": None, "api_type": "fake"}
            )
    mine = _ours_requests(ev.judging, instances, ours, lambda m: "[[A>B]]")  # type: ignore[arg-type]
    assert len(mine) == 2 * len(instances) and mine == sent


def test_creative_writing_is_judged_with_its_own_system_prompt() -> None:
    kind = evaluation("v2.0", categories=["hard_prompt"]).judging
    assert isinstance(kind, Games)
    hard = kind.messages("hard_prompt", "q", "a", "b")[0]["content"]
    creative = kind.messages("creative_writing", "q", "a", "b")[0]["content"]
    assert "generating your own answer" in hard and "generating your own answer" not in creative


@pytest.mark.parametrize(
    ("text", "style", "label"),
    [
        ("[[A>B]] then [[A>B]]", "unique_first_pattern", ("A>B", False)),
        ("[[A>B]] then [[B>A]]", "unique_first_pattern", (None, False)),
        ("no label, [A>B] only", "unique_first_pattern", (None, True)),
        ("[[a>b]] then [[B>>A]]", "last_match_in_order", ("B>>A", False)),
        ("only [b>a] here", "last_match_in_order", ("B>A", False)),
        ("nothing", "last_match_in_order", (None, False)),
    ],
)
def test_verdicts_are_read_as_each_versions_get_score(
    text: str, style: str, label: tuple[str | None, bool]
) -> None:
    patterns = (r"\[\[([AB<>=]+)\]\]", r"\[([AB<>=]+)\]")
    assert parse_label(text, patterns, style) == label


def test_a_file_pinned_by_its_git_blob_id_is_checked_on_download_and_in_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gemini-2.0-flash's v2.0 answers are pinned by their git blob id (`git hash-object`)."""
    import hashlib

    from eval.benchmarks import fetch as fetch_mod

    relpath = "arena_hard/data/arena-hard-v2.0/model_answer/gemini-2.0-flash-001.jsonl"
    good, bad = b'{"uid": "u"}\n', b'{"uid": "tampered"}\n'
    blob = hashlib.sha1(b"blob %d\0" % len(good) + good).hexdigest()
    url = fetch_mod.SOURCES[relpath].url  # type: ignore[union-attr]
    monkeypatch.setitem(fetch_mod.SOURCES, relpath, fetch_mod.GitBlobSource(url, blob))
    served: list[bytes] = []

    def network(url_: str, output_file: Any, pooch: object) -> None:
        assert url_ == url
        Path(output_file).write_bytes(served[-1])

    monkeypatch.setattr(fetch_mod, "HTTP", network)
    # a folder that already holds a user's own files: the failed download's staging folder is
    # removed, and nothing else
    folder = (tmp_path / relpath).parent
    folder.mkdir(parents=True)
    (folder / "mine.jsonl").write_text("a user's file\n")
    (folder / ".mine").mkdir()
    (folder / ".mine" / "kept.txt").write_text("kept\n")
    served.append(bad)
    with pytest.raises(DataError, match="no cached copy and it cannot be downloaded"):
        fetch_mod.fetch(relpath, cache_dir=tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == [".mine", "mine.jsonl"]
    assert (folder / "mine.jsonl").read_text() == "a user's file\n"
    assert (folder / ".mine" / "kept.txt").read_text() == "kept\n"
    served.append(good)
    path = fetch_mod.fetch(relpath, cache_dir=tmp_path)
    assert path.read_bytes() == good
    served.append(bad)  # a cache hit: nothing downloaded
    assert fetch_mod.fetch(relpath, cache_dir=tmp_path).read_bytes() == good
