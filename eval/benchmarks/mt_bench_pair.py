"""MT-Bench against a baseline (FastChat's `--mode pairwise-baseline`): MT-Bench's questions,
decoding and answer file, each instance carrying the baseline's answers to beat.

The baseline is a FastChat `model_answer/<model>.jsonl` (`benchmark.baseline_file`); its model
name is the file's stem, as FastChat's `load_model_answers` names it. FastChat's default
baseline, gpt-3.5-turbo, is published on the Hugging Face space lmsys/mt-bench only (the GitHub
copies found are a Polish translation and a Git LFS pointer: none to pin by hash), so the file
is never downloaded: without it the run is refused in one line before any call. Its judge is
`conf/judge_spec/mt_bench_pair.yaml`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType

from eval.benchmarks import _read
from eval.benchmarks.base import DataError, Instance
from eval.benchmarks.mt_bench import TURNS, MTBench
from eval.rundir import InstanceResult, RunDir, write_jsonl

DEFAULT_BASELINE = "mt_bench/model_answer/gpt-3.5-turbo.jsonl"


def read_baseline(path: Path, question_ids: list[str]) -> dict[str, tuple[str, ...]]:
    """The baseline's answer turns per question id; every question must have two."""
    answers: dict[str, tuple[str, ...]] = {}
    for n, row in enumerate(_read.read_jsonl(path), 1):
        where = f"record {n}"
        qid = str(_read.integer(path, row, "question_id", where))
        choices = row.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise _read.bad(path, f"{where}: field 'choices' is missing or empty")
        answers[qid] = _read.texts(path, choices[0], "turns", f"{where} choice 0", empty=True)
    missing = [q for q in question_ids if len(answers.get(q, ())) != TURNS]
    if missing:
        raise _read.bad(path, f"no {TURNS}-turn baseline answer for questions {', '.join(missing)}")
    return answers


def baseline_file(run_dir: Path, baseline: str) -> Path:
    """Where a run keeps its baseline's answers: beside its own, in FastChat's layout."""
    return run_dir / "model_answer" / f"{baseline}.jsonl"


def run_baseline(run_dir: Path, baseline: str) -> dict[str, tuple[str, ...]]:
    """The baseline answers a run was judged against, per question id; none if not kept."""
    path = baseline_file(run_dir, baseline)
    return read_baseline(path, []) if path.is_file() else {}


class MTBenchPair(MTBench):
    name = "mt_bench_pair"

    def baseline_path(self) -> Path:
        """`benchmark.baseline_file`, else FastChat's default baseline in the data folder."""
        named = self.settings.get("baseline_file")
        path = Path(str(named)).expanduser() if named else self.data.root / DEFAULT_BASELINE
        if not path.is_file():
            raise DataError(
                f"{path}: no baseline answers; give benchmark.baseline_file=<FastChat "
                "model_answer jsonl> (gpt-3.5-turbo's is data/mt_bench/model_answer/"
                "gpt-3.5-turbo.jsonl of the Hugging Face space lmsys/mt-bench)"
            )
        return path

    def load(self) -> list[Instance]:
        """MT-Bench's questions, each with `baseline_model` and `baseline_turns` in its meta."""
        instances = super().load()
        path = self.baseline_path()
        answers = read_baseline(path, [i.id for i in instances])
        return [
            dataclasses.replace(
                i,
                meta=MappingProxyType(
                    {**i.meta, "baseline_model": path.stem, "baseline_turns": answers[i.id]}
                ),
            )
            for i in instances
        ]

    def write_outputs(
        self,
        run: RunDir,
        variant: str,
        instances: Sequence[Instance],
        results: Sequence[InstanceResult],
    ) -> Path:
        """Ours, as MT-Bench writes them, and the baseline's answers to the same questions
        beside them, so the run folder is a FastChat `data/mt_bench` that judges as it was
        judged (and the browser shows the baseline without its original file)."""
        path = super().write_outputs(run, variant, instances, results)
        if instances:
            baseline = str(instances[0].meta["baseline_model"])
            rows = [
                {
                    "question_id": int(i.id),
                    "model_id": baseline,
                    "choices": [{"index": 0, "turns": list(i.meta["baseline_turns"])}],
                }
                for i in instances
            ]
            write_jsonl(baseline_file(run.path, baseline), rows, ascii_only=False)
        return path


BENCHMARK = MTBenchPair
