"""Benchmark loaders on the real files, on broken copies of them, and the fetch/cache paths.

No test touches the network: the downloaders are replaced by fakes, and an autouse fixture makes
any unexpected download fail the test.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from huggingface_hub.errors import LocalEntryNotFoundError

from eval.benchmarks import DataError, Instance, flask, mt_bench, select
from eval.benchmarks import fetch as fetch_mod
from eval.benchmarks.alpaca_eval import load_alpaca_eval
from eval.benchmarks.data import Data
from eval.benchmarks.fetch import default_cache_dir, fetch
from eval.benchmarks.flask import load_flask
from eval.benchmarks.mt_bench import load_mt_bench
from eval.evaluation import evaluation_for, known
from moa.errors import ConfigError
from moa.providers.replay import read_outputs

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_data = pytest.mark.skipif(
    not SHARED.is_dir(),
    reason=f"real benchmark files not found at {SHARED} (the read-only ../shared/data copies)",
)

ALPACA = "alpaca_eval/alpaca_eval_gpt4_baseline.json"
QUESTIONS = "mt_bench/question.jsonl"
REFERENCES = "mt_bench/reference_answer/gpt-4.jsonl"
FLASK = "flask/flask_evaluation.jsonl"
FLASK_HARD = "flask/flask_hard_evaluation.jsonl"
MOA_OUTPUTS = "alpaca_eval/model_outputs/Together-MoA.json"


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Any download a test did not arrange fails it; the default cache is a fresh folder."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"unexpected download: {args} {kwargs}")

    monkeypatch.setattr(fetch_mod, "HTTP", refuse)
    monkeypatch.setattr(fetch_mod, "hf_hub_download", refuse)
    monkeypatch.setenv("MOA_BENCH_CACHE", str(tmp_path / "default-cache"))


@pytest.fixture(scope="module")
def alpaca() -> list[Instance]:
    return load_alpaca_eval(data_dir=SHARED)


@pytest.fixture(scope="module")
def mt() -> list[Instance]:
    return load_mt_bench(data_dir=SHARED)


def copy_layout(root: Path, *relpaths: str) -> Path:
    """A data_dir under `root` holding copies of the named real files (in tmp, never the repo)."""
    for relpath in relpaths:
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHARED / relpath, root / relpath)
    return root


def edit_jsonl(path: Path, change: Callable[[list[dict[str, Any]]], object]) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    change(rows)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def edit_json(path: Path, change: Callable[[Any], object]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def assert_names(
    error: pytest.ExceptionInfo[DataError] | pytest.ExceptionInfo[ConfigError],
    path: Path,
    *words: str,
) -> None:
    message = str(error.value)
    assert "\n" not in message
    assert str(path) in message
    for word in words:
        assert word in message


# --- real data ---------------------------------------------------------------------------------


@needs_data
def test_alpaca_eval_real_file(alpaca: list[Instance]) -> None:
    rows = json.loads((SHARED / ALPACA).read_text())
    assert len(alpaca) == 805
    assert [i.id for i in alpaca] == [str(n) for n in range(805)]
    assert [i.turns for i in alpaca] == [(row["instruction"],) for row in rows]
    assert all(i.category is None and i.references is None for i in alpaca)
    first = alpaca[0].meta
    assert first["reference_output"] == rows[0]["output"]
    assert first["reference_generator"] == "gpt4_1106_preview"
    assert Counter(i.meta["dataset"] for i in alpaca) == {
        "selfinstruct": 252,
        "oasst": 188,
        "koala": 156,
        "helpful_base": 129,
        "vicuna": 80,
    }


@needs_data
def test_mt_bench_real_files(mt: list[Instance]) -> None:
    assert [i.id for i in mt] == [str(n) for n in range(81, 161)]
    assert all(len(i.turns) == 2 for i in mt)
    categories = Counter(i.category for i in mt)
    assert categories == dict.fromkeys(mt_bench.TEMPERATURES, 10)
    with_reference = {i.id for i in mt if i.references is not None}
    assert with_reference == {str(n) for n in range(101, 131)}
    assert {i.category for i in mt if i.references} == {"math", "reasoning", "coding"}
    reference = json.loads((SHARED / REFERENCES).read_text().splitlines()[0])
    assert mt[20].id == "101"
    assert mt[20].references == tuple(reference["choices"][0]["turns"])
    assert mt[20].meta["question_reference"] == ("You are in second place.", "Uncertain.")
    assert mt[0].meta["question_reference"] is None


def test_mt_bench_settings_match_fastchat_and_moa() -> None:
    assert dict(mt_bench.TEMPERATURES) == {
        "writing": 0.7,
        "roleplay": 0.7,
        "extraction": 0.0,
        "math": 0.0,
        "coding": 0.0,
        "reasoning": 0.0,
        "stem": 0.1,
        "humanities": 0.1,
    }
    assert sorted(mt_bench.NEED_REF_CATEGORIES) == ["coding", "math", "reasoning"]


@needs_data
def test_flask_real_files() -> None:
    instances = load_flask(data_dir=SHARED)
    rows = [json.loads(line) for line in (SHARED / FLASK).read_text().splitlines()]
    assert [i.id for i in instances] == [str(n) for n in range(1, 1741)]
    assert all(len(i.turns) == 1 and i.category is None for i in instances)
    assert instances[0].references == (rows[0]["answer"],)
    assert instances[0].meta["skill"] == ("Readability", "Logical Correctness", "Conciseness")
    assert instances[0].meta["domain"] == ("Humanities",)
    assert instances[0].meta["task"] == "Self-instruct"
    assert Counter(len(i.meta["skill"]) for i in instances) == {3: 1739, 2: 1}
    assert instances[1705].meta["difficulty"] == -1  # as published
    hard = load_flask(data_dir=SHARED, hard=True)
    assert [i.id for i in hard] == [str(n) for n in range(1, 90)]
    assert hard[0].turns != instances[0].turns


@needs_data
def test_flask_judge_files() -> None:
    skills = flask.load_skills(data_dir=SHARED)
    assert len(skills) == 12
    used = {s for i in load_flask(data_dir=SHARED) for s in i.meta["skill"]}
    assert used == set(skills)
    assert list(skills["Readability"].rubric) == [1, 2, 3, 4, 5]
    prompts = flask.load_review_prompts(data_dir=SHARED)
    assert sorted(prompts) == [1, 2]
    assert "{sample_answer}" in prompts[2].template
    assert "{sample_answer}" not in prompts[1].template
    assert set(prompts[1].defaults) == {"prompt1", "prompt2"}
    reviewers = flask.load_reviewers(data_dir=SHARED)
    assert [(r.prompt_id, r.temperature, r.max_tokens) for r in reviewers] == [
        (1, 0.2, 1024),
        (2, 0.2, 1024),
    ]


@needs_data
def test_model_outputs_real_file(alpaca: list[Instance]) -> None:
    instructions = [i.turns[0] for i in alpaca]
    outputs = read_outputs(SHARED / MOA_OUTPUTS, expected=instructions)
    assert list(outputs) == instructions
    first = json.loads((SHARED / MOA_OUTPUTS).read_text())[0]
    assert outputs[first["instruction"]] == first["output"]


@needs_data
def test_registry_names() -> None:
    data = Data(str(SHARED))
    paired = "mt_bench_pair"  # MT-Bench with a baseline's answers: tests/test_mt_bench_pair.py
    # v2.0's creative-writing baseline is not in ../shared/data: its hard prompts only
    only = {"arena_hard_v2.0": {"categories": ["hard_prompt"]}}
    sizes = {
        n: len(evaluation_for({"name": n, **only.get(n, {})}, data).load())
        for n in known()
        if n != paired
    }
    assert sizes == {
        "alpaca_eval": 805,
        "mt_bench": 80,
        "flask": 1740,
        "flask_hard": 89,
        "demo": 8,
        "arena_hard_v0.1": 500,
        "arena_hard_v2.0": 750,
        "gsm8k": 1319,
        "math500": 500,
        "cruxeval_o": 800,
        "cruxeval_i": 800,
    }
    assert evaluation_for({"name": "flask_hard"}, data).load() == load_flask(
        data_dir=SHARED, hard=True
    )


def test_registry_rejects_unknown_names() -> None:
    with pytest.raises(ConfigError, match="unknown benchmark 'arena'"):
        evaluation_for({"name": "arena"})


# --- broken copies -----------------------------------------------------------------------------


def _drop_last(rows: list[Any]) -> None:
    rows.pop()


def _duplicate_first_id(key: str) -> Callable[[list[dict[str, Any]]], None]:
    def change(rows: list[dict[str, Any]]) -> None:
        rows[1][key] = rows[0][key]

    return change


def _set(index: int, key: str, value: Any) -> Callable[[list[dict[str, Any]]], None]:
    def change(rows: list[dict[str, Any]]) -> None:
        if value is None:
            del rows[index][key]
        else:
            rows[index][key] = value

    return change


@needs_data
@pytest.mark.parametrize(
    ("change", "words"),
    [
        (truncate, ["invalid JSON"]),
        (lambda p: edit_json(p, _drop_last), ["expected 805 instructions, found 804"]),
        (lambda p: edit_json(p, _duplicate_first_id("instruction")), ["more than once"]),
        (lambda p: edit_json(p, _set(3, "output", None)), ["record 4", "'output'"]),
        (lambda p: edit_json(p, _set(0, "instruction", "  ")), ["record 1", "empty"]),
        (lambda p: p.write_text('{"instruction": "x"}'), ["expected a list"]),
        (lambda p: p.write_bytes(b"\xff\xfe[]"), ["not UTF-8"]),
    ],
)
def test_alpaca_eval_broken_file(
    tmp_path: Path, change: Callable[[Path], None], words: list[str]
) -> None:
    data_dir = copy_layout(tmp_path, ALPACA)
    change(data_dir / ALPACA)
    with pytest.raises(DataError) as error:
        load_alpaca_eval(data_dir=data_dir)
    assert_names(error, data_dir / ALPACA, *words)


def _cut_mid_line(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: data.rindex(b"\n", 0, len(data) - 1) + 40])


@needs_data
@pytest.mark.parametrize(
    ("target", "change", "words"),
    [
        (QUESTIONS, _cut_mid_line, ["line 80 is not valid JSON"]),
        (QUESTIONS, lambda p: edit_jsonl(p, _drop_last), ["expected 80 questions, found 79"]),
        (QUESTIONS, lambda p: edit_jsonl(p, _duplicate_first_id("question_id")), ["81"]),
        (QUESTIONS, lambda p: edit_jsonl(p, _set(0, "turns", ["only one"])), ["1 turns"]),
        (QUESTIONS, lambda p: edit_jsonl(p, _set(0, "question_id", 7)), ["81..160"]),
        (QUESTIONS, lambda p: edit_jsonl(p, _set(0, "category", "poetry")), ["'poetry'"]),
        (QUESTIONS, lambda p: edit_jsonl(p, _set(5, "turns", "a string")), ["question 86"]),
        (REFERENCES, lambda p: edit_jsonl(p, lambda rows: rows.pop(0)), ["questions 101"]),
        (REFERENCES, _cut_mid_line, ["not valid JSON"]),
        (REFERENCES, lambda p: edit_jsonl(p, _set(2, "choices", [])), ["record 3", "choices"]),
    ],
)
def test_mt_bench_broken_files(
    tmp_path: Path, target: str, change: Callable[[Path], None], words: list[str]
) -> None:
    data_dir = copy_layout(tmp_path, QUESTIONS, REFERENCES)
    change(data_dir / target)
    with pytest.raises(DataError) as error:
        load_mt_bench(data_dir=data_dir)
    assert_names(error, data_dir / target, *words)


@needs_data
@pytest.mark.parametrize(
    ("target", "change", "words"),
    [
        (FLASK, truncate, ["not valid JSON"]),
        (FLASK, lambda p: edit_jsonl(p, _drop_last), ["expected 1740 instances, found 1739"]),
        (FLASK, lambda p: edit_jsonl(p, _duplicate_first_id("idx")), ["idx '1'"]),
        (FLASK, lambda p: edit_jsonl(p, _set(9, "skill", "Readability")), ["record 10"]),
        (FLASK, lambda p: edit_jsonl(p, _set(0, "answer", None)), ["'answer'"]),
        (FLASK_HARD, lambda p: edit_jsonl(p, _drop_last), ["expected 89 instances"]),
    ],
)
def test_flask_broken_files(
    tmp_path: Path, target: str, change: Callable[[Path], None], words: list[str]
) -> None:
    data_dir = copy_layout(tmp_path, target)
    change(data_dir / target)
    with pytest.raises(DataError) as error:
        load_flask(data_dir=data_dir, hard=target == FLASK_HARD)
    assert_names(error, data_dir / target, *words)


@needs_data
def test_flask_judge_files_broken(tmp_path: Path) -> None:
    skills = "flask/skillset_description.json"
    data_dir = copy_layout(tmp_path, skills, "flask/gpt_review_reviewer.jsonl")
    edit_json(data_dir / skills, lambda rows: rows[0]["Scoring"].pop("5"))
    with pytest.raises(DataError) as error:
        flask.load_skills(data_dir=data_dir)
    assert_names(error, data_dir / skills, "record 1", "Scoring")

    reviewers = data_dir / "flask/gpt_review_reviewer.jsonl"
    edit_jsonl(reviewers, lambda rows: rows[1].update(prompt_id=1))
    with pytest.raises(DataError) as error:
        flask.load_reviewers(data_dir=data_dir)
    assert_names(error, reviewers, "prompt_id 1")


@needs_data
def test_model_outputs_broken(tmp_path: Path, alpaca: list[Instance]) -> None:
    path = copy_layout(tmp_path, MOA_OUTPUTS) / MOA_OUTPUTS
    instructions = [i.turns[0] for i in alpaca]
    edit_json(path, _drop_last)
    with pytest.raises(ConfigError) as error:
        read_outputs(path, expected=instructions)
    assert_names(error, path, "1 instructions have no output")
    edit_json(path, _duplicate_first_id("instruction"))
    with pytest.raises(ConfigError) as error:
        read_outputs(path)
    assert_names(error, path, "record 2 repeats")


# --- subsets -----------------------------------------------------------------------------------


def _instances() -> list[Instance]:
    return [
        Instance(str(n), (f"q{n}",), category, None, {})
        for n, category in enumerate(["math", "writing", "math", "coding", "writing"])
    ]


def test_select_keeps_benchmark_order() -> None:
    items = _instances()
    assert select(items) == items
    assert [i.id for i in select(items, ids=["3", "0"])] == ["0", "3"]
    assert [i.id for i in select(items, categories=["writing", "math"])] == ["0", "1", "2", "4"]
    assert [i.id for i in select(items, categories=["math"], limit=1)] == ["0"]
    assert [i.id for i in select(items, ids=["4", "2", "1"], categories=["writing"])] == ["1", "4"]
    assert [i.id for i in select(items, limit=2)] == ["0", "1"]
    assert select(items, limit=0) == []
    assert [i.id for i in select(items, ids=[2])] == ["2"]  # type: ignore[list-item]


def test_select_rejects_what_the_benchmark_lacks() -> None:
    items = _instances()
    with pytest.raises(ValueError, match="unknown instance ids: 9"):
        select(items, ids=["1", "9"])
    with pytest.raises(ValueError, match=r"unknown categories: poetry \(known: coding, math"):
        select(items, categories=["poetry"])
    with pytest.raises(ValueError, match="limit"):
        select(items, limit=-1)
    plain = [Instance("0", ("q",), None, None, {})]
    with pytest.raises(ValueError, match="no categories"):
        select(plain, categories=["math"])


@needs_data
def test_select_on_mt_bench(mt: list[Instance]) -> None:
    coding = select(mt, categories=["coding"], limit=3)
    assert [i.id for i in coding] == ["121", "122", "123"]


# --- fetch -------------------------------------------------------------------------------------


@needs_data
def test_fetch_from_data_dir_never_downloads() -> None:
    assert fetch(QUESTIONS, data_dir=SHARED) == SHARED / QUESTIONS
    assert fetch(QUESTIONS, data_dir=str(SHARED)) == SHARED / QUESTIONS


def test_fetch_data_dir_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError) as error:
        fetch(QUESTIONS, data_dir=tmp_path)
    assert_names(error, tmp_path / QUESTIONS, "not found", "data_dir")


def test_fetch_unknown_file_without_data_dir(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no download source"):
        fetch("mt_bench/other.jsonl", cache_dir=tmp_path)


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert default_cache_dir() == tmp_path / "default-cache"
    monkeypatch.delenv("MOA_BENCH_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / ".cache" / "moa-bench" / "data"


@needs_data
def test_fetch_cache_hit(tmp_path: Path) -> None:
    cache = copy_layout(tmp_path / "cache", QUESTIONS, ALPACA)
    assert fetch(QUESTIONS, data_dir=None, cache_dir=cache) == cache / QUESTIONS
    assert fetch(ALPACA, data_dir=None, cache_dir=cache) == cache / ALPACA


@needs_data
def test_loaders_read_the_default_cache(tmp_path: Path) -> None:
    copy_layout(tmp_path / "default-cache", QUESTIONS, REFERENCES)
    assert len(evaluation_for({"name": "mt_bench"}).load()) == 80


class FakeNetwork:
    """Stands in for pooch's HTTP downloader: serves bytes per URL, or fails like offline."""

    def __init__(self, files: dict[str, bytes] | None = None) -> None:
        self.files = files or {}
        self.urls: list[str] = []

    def __call__(self, url: str, output_file: Any, pooch: object) -> None:
        self.urls.append(url)
        if url not in self.files:
            raise requests.exceptions.ConnectionError(f"cannot reach {url}")
        Path(output_file).write_bytes(self.files[url])


def _source_url(relpath: str) -> str:
    source = fetch_mod.SOURCES[relpath]
    assert isinstance(source, fetch_mod.UrlSource)
    return source.url


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture
def network(monkeypatch: pytest.MonkeyPatch) -> FakeNetwork:
    fake = FakeNetwork()
    monkeypatch.setattr(fetch_mod, "HTTP", fake)
    return fake


@needs_data
def test_fetch_downloads_on_miss(tmp_path: Path, network: FakeNetwork) -> None:
    url = _source_url(QUESTIONS)
    network.files[url] = (SHARED / QUESTIONS).read_bytes()
    path = fetch(QUESTIONS, data_dir=None, cache_dir=tmp_path)
    assert path == tmp_path / QUESTIONS
    assert path.read_bytes() == (SHARED / QUESTIONS).read_bytes()
    assert network.urls == [url]
    fetch(QUESTIONS, data_dir=None, cache_dir=tmp_path)
    assert network.urls == [url]  # the second call is a cache hit


def test_fetch_rejects_a_corrupt_download(tmp_path: Path, network: FakeNetwork) -> None:
    network.files[_source_url(QUESTIONS)] = b'{"question_id": 81}\n'
    with pytest.raises(DataError) as error:
        fetch(QUESTIONS, data_dir=None, cache_dir=tmp_path)
    assert "no cached copy" in str(error.value)
    assert _leftovers(tmp_path / "mt_bench") == []  # nothing half-written stays behind


def test_fetch_offline_without_cache(tmp_path: Path, network: FakeNetwork) -> None:
    with pytest.raises(DataError) as error:
        fetch(REFERENCES, data_dir=None, cache_dir=tmp_path)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(REFERENCES)
    assert "pass data_dir=... or connect once to download" in message
    assert _leftovers(tmp_path / "mt_bench" / "reference_answer") == []


@needs_data
def test_fetch_replaces_a_corrupt_cached_copy(tmp_path: Path, network: FakeNetwork) -> None:
    cached = tmp_path / QUESTIONS
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"garbage")
    with pytest.raises(DataError, match="cached copy is corrupt"):
        fetch(QUESTIONS, data_dir=None, cache_dir=tmp_path)
    network.files[_source_url(QUESTIONS)] = (SHARED / QUESTIONS).read_bytes()
    assert (
        fetch(QUESTIONS, data_dir=None, cache_dir=tmp_path).read_bytes()
        == (SHARED / QUESTIONS).read_bytes()
    )


@needs_data
def test_fetch_alpaca_eval_from_the_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[dict[str, Any]] = []

    def hub(**kwargs: Any) -> str:
        calls.append(kwargs)
        out = Path(kwargs["local_dir"]) / kwargs["filename"]
        shutil.copyfile(SHARED / ALPACA, out)
        return str(out)

    monkeypatch.setattr(fetch_mod, "hf_hub_download", hub)
    path = fetch(ALPACA, data_dir=None, cache_dir=tmp_path)
    assert path == tmp_path / ALPACA
    assert calls[0]["repo_id"] == "tatsu-lab/alpaca_eval"
    assert calls[0]["repo_type"] == "dataset"
    assert calls[0]["filename"] == "alpaca_eval_gpt4_baseline.json"
    assert _leftovers(tmp_path / "alpaca_eval") == ["alpaca_eval_gpt4_baseline.json"]
    assert len(load_alpaca_eval(cache_dir=tmp_path)) == 805


@needs_data
def test_a_hub_baseline_with_a_changed_output_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The Hub's file has no pinned revision: its rows are checked against the pinned digest."""
    rows = json.loads((SHARED / ALPACA).read_text(encoding="utf-8"))
    rows[400]["output"] += " (edited)"

    def hub(**kwargs: Any) -> str:
        out = Path(kwargs["local_dir"]) / kwargs["filename"]
        out.write_text(json.dumps(rows), encoding="utf-8")
        return str(out)

    monkeypatch.setattr(fetch_mod, "hf_hub_download", hub)
    with pytest.raises(DataError) as error:
        fetch(ALPACA, data_dir=None, cache_dir=tmp_path)
    assert "do not match the pinned digest" in str(error.value)
    assert "\n" not in str(error.value)
    assert _leftovers(tmp_path / "alpaca_eval") == []


def test_fetch_hub_failure_leaves_no_partial_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def hub(**kwargs: Any) -> str:
        (Path(kwargs["local_dir"]) / kwargs["filename"]).write_text('[{"instruction": ')
        raise OSError("connection reset")

    monkeypatch.setattr(fetch_mod, "hf_hub_download", hub)
    with pytest.raises(DataError) as error:
        fetch(ALPACA, data_dir=None, cache_dir=tmp_path)
    assert "connection reset" in str(error.value)
    assert "pass data_dir=... or connect once to download" in str(error.value)
    assert _leftovers(tmp_path / "alpaca_eval") == []


@pytest.mark.parametrize("words", [40, 80])
def test_a_download_error_is_never_cut_mid_word(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, words: int
) -> None:
    """Issue 20, item 10: offline, the Hub's error (its first line, 207 characters) was cut at
    160, "...and try aga". A first line is kept whole, or shortened at a word, with "..."."""
    said = " ".join(f"word{i}" for i in range(words)) + " end."

    def hub(**kwargs: Any) -> str:
        raise LocalEntryNotFoundError(said + "\nA second line.")

    monkeypatch.setattr(fetch_mod, "hf_hub_download", hub)
    with pytest.raises(DataError) as error:
        fetch(ALPACA, data_dir=None, cache_dir=tmp_path)
    detail = str(error.value).split("(LocalEntryNotFoundError: ", 1)[1].split(");", 1)[0]
    if len(said) <= 300:
        assert detail == said
    else:
        assert detail.endswith(" ...") and said.startswith(detail[:-4] + " ")
        assert len(detail) <= 304


def test_every_source_is_pinned() -> None:
    for relpath, source in fetch_mod.SOURCES.items():
        assert relpath.split("/")[0] in {
            "alpaca_eval",
            "mt_bench",
            "flask",
            "arena_hard",
            "gsm8k",
            "math500",
            "cruxeval",
        }
        if isinstance(source, fetch_mod.GitBlobSource):
            assert len(source.blob_sha1) == 40
        if isinstance(source, fetch_mod.UrlSource):
            assert len(source.sha256) == 64
            assert source.url.startswith("https://raw.githubusercontent.com/")


@needs_data
def test_pinned_hashes_match_the_real_files() -> None:
    for relpath, source in fetch_mod.SOURCES.items():
        if isinstance(source, fetch_mod.UrlSource):
            digest = hashlib.sha256((SHARED / relpath).read_bytes()).hexdigest()
            assert digest == source.sha256, relpath
