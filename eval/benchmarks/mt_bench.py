"""MT-Bench: 80 two-turn questions in 8 categories, with GPT-4 references where FastChat uses them.

The constants mirror FastChat's `fastchat/llm_judge/common.py` (`temperature_config`,
`NEED_REF_CATS`); the MoA repository's `generate_for_mt_bench.py` decodes with
`--max-tokens 1024` (`conf/benchmark/mt_bench.yaml`).

Native file: `model_answer/<model>.jsonl`, where the model id is the run directory's name
(`moa@scripted`, `moa~first5`), in the file's name, its `model_id` and the judgments' `model`:
FastChat matches answers to judgments by that id, so runs of one variant on different providers
stay apart once their files are merged. Its judge is `conf/judge_spec/mt_bench.yaml`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

from eval.benchmarks import _read
from eval.benchmarks.base import Instance
from eval.benchmarks.benchmark import Benchmark
from eval.benchmarks.fetch import fetch
from eval.rundir import InstanceResult, RunDir, write_jsonl
from moa.types import GenerateConfig

QUESTIONS = "mt_bench/question.jsonl"
REFERENCES = "mt_bench/reference_answer/gpt-4.jsonl"

IDS = range(81, 161)
TURNS = 2
TEMPERATURES: Mapping[str, float] = MappingProxyType(
    {
        "writing": 0.7,
        "roleplay": 0.7,
        "extraction": 0.0,
        "math": 0.0,
        "coding": 0.0,
        "reasoning": 0.0,
        "stem": 0.1,
        "humanities": 0.1,
    }
)
NEED_REF_CATEGORIES = frozenset({"math", "reasoning", "coding"})


def load_mt_bench(
    *, data_dir: Path | str | None = None, cache_dir: Path | str | None = None
) -> list[Instance]:
    """The 80 questions in file order, with GPT-4 references on math, reasoning and coding."""
    path = fetch(QUESTIONS, data_dir=data_dir, cache_dir=cache_dir)
    rows = _read.read_jsonl(path)
    _read.check_count(path, len(rows), len(IDS), "questions")
    ids = [_read.integer(path, row, "question_id", f"record {n}") for n, row in enumerate(rows, 1)]
    _read.check_unique(path, ids, "question_id")
    if sorted(ids) != list(IDS):
        raise _read.bad(path, f"question ids are not {IDS.start}..{IDS.stop - 1}")
    ref_path = fetch(REFERENCES, data_dir=data_dir, cache_dir=cache_dir)
    references = _read_references(ref_path)
    instances = [_instance(path, row, references) for row in rows]
    missing = [i.id for i in instances if i.category in NEED_REF_CATEGORIES and not i.references]
    if missing:
        raise _read.bad(ref_path, f"no reference answer for questions {', '.join(missing)}")
    return instances


def _instance(
    path: Path, row: Mapping[str, Any], references: Mapping[int, tuple[str, ...]]
) -> Instance:
    qid = row["question_id"]
    where = f"question {qid}"
    category = _read.text(path, row, "category", where)
    if category not in TEMPERATURES:
        raise _read.bad(path, f"{where}: unknown category {category!r}")
    turns = _read.texts(path, row, "turns", where)
    if len(turns) != TURNS:
        raise _read.bad(path, f"{where}: has {len(turns)} turns, expected {TURNS}")
    # Some questions carry short answer keys of their own (not what FastChat's judge uses).
    own = None
    if row.get("reference") is not None:
        own = _read.texts(path, row, "reference", where, empty=True)
    return Instance(
        id=str(qid),
        turns=turns,
        category=category,
        references=references.get(qid) if category in NEED_REF_CATEGORIES else None,
        meta=MappingProxyType({"question_reference": own}),
    )


def _read_references(path: Path) -> dict[int, tuple[str, ...]]:
    references: dict[int, tuple[str, ...]] = {}
    for n, row in enumerate(_read.read_jsonl(path), 1):
        where = f"record {n}"
        qid = _read.integer(path, row, "question_id", where)
        choices = row.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise _read.bad(path, f"{where}: field 'choices' is missing or empty")
        turns = _read.texts(path, choices[0], "turns", f"{where} choice 0")
        if len(turns) != TURNS:
            raise _read.bad(path, f"{where}: reference has {len(turns)} turns, expected {TURNS}")
        if qid in references:
            raise _read.bad(path, f"question_id {qid} occurs more than once")
        references[qid] = turns
    return references


def model_id(run_dir: Path) -> str:
    """The model id FastChat knows a run by: its directory's name (`moa@scripted`), in the
    answer file's name, its `model_id` and the judgments' `model`."""
    return run_dir.name


def answer_id(variant: str, question_id: str) -> str:
    """Stable across re-runs, unlike FastChat's random shortuuid, so identical runs diff clean."""
    return hashlib.sha256(f"{variant}/{question_id}".encode()).hexdigest()[:22]


class MTBench(Benchmark):
    name = "mt_bench"
    view_data: ClassVar[Mapping[str, str]] = {
        QUESTIONS: "its categories",
        REFERENCES: "its categories",  # read with the questions (`load_mt_bench`)
    }

    def load(self) -> list[Instance]:
        return load_mt_bench(data_dir=self.data.data_dir, cache_dir=self.data.cache_dir)

    def generation(self) -> Callable[[Instance], GenerateConfig]:
        default = self.default_generation()
        if not self.settings["generation"].get("per_category_temperature"):
            return lambda instance: default
        by_category = {c: default.merged(temperature=t) for c, t in TEMPERATURES.items()}
        return lambda instance: by_category.get(instance.category or "", default)

    def output_path(self, run: RunDir, variant: str) -> Path:
        return run.native("model_answer", f"{model_id(run.path)}.jsonl")

    def write_outputs(
        self,
        run: RunDir,
        variant: str,
        instances: Sequence[Instance],
        results: Sequence[InstanceResult],
    ) -> Path:
        rows = [
            {
                "question_id": int(inst.id),
                "answer_id": answer_id(variant, inst.id),
                "model_id": model_id(run.path),
                "choices": [{"index": 0, "turns": r.outputs}],
                "tstamp": r.finished_at,
            }
            for inst, r in zip(instances, results, strict=True)
            if r.outputs
        ]
        path = self.output_path(run, variant)
        write_jsonl(path, rows, ascii_only=False)
        return path

    def categories_here(self) -> dict[str, str]:
        """Each question's category, from the benchmark's files where they are on this
        machine; none without them (the browser says so, `view_data`, and downloads nothing)."""
        if any(self.data.local(relpath) is None for relpath in self.view_data):
            return {}
        return {i.id: i.category or "" for i in load_mt_bench(data_dir=self.data.root)}


BENCHMARK = MTBench
