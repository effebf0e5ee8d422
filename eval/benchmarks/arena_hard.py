"""Arena-Hard-Auto (lmarena/arena-hard-auto): v0.1's 500 prompts against gpt-4-0314's answers,
v2.0's 750 (500 hard prompts against o3-mini, 250 creative-writing ones against
gemini-2.0-flash), every file pinned to one upstream commit (`arena_hard_files`).

Native file: `model_answer/<run>.jsonl` in arena-hard-auto's current layout (keyed by `uid`,
the answer under `messages[-1].content.answer`, the markdown counts its style control reads
under `metadata`); its judge is `conf/judge_spec/arena_hard_v*.yaml` (`eval.judges.games`).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

from eval.benchmarks import _read
from eval.benchmarks import arena_hard_files as files
from eval.benchmarks.base import Instance
from eval.benchmarks.benchmark import Benchmark
from eval.rundir import InstanceResult, RunDir, write_jsonl

_CODE_BLOCK = re.compile("```([^`]*)```")


def read_answers(path: Path) -> dict[str, tuple[str, dict[str, Any] | None]]:
    """A `model_answer/<model>.jsonl` file: uid -> the last message's answer, and the style
    `metadata` upstream adds to it (None where the file has none, as v0.1's)."""
    answers = {}
    for n, row in enumerate(_read.read_jsonl(path), 1):
        uid = _read.text(path, row, "uid", f"line {n}")
        messages = row.get("messages")
        content = messages[-1].get("content") if isinstance(messages, list) and messages else None
        answer = content.get("answer") if isinstance(content, dict) else None
        if not isinstance(answer, str):
            raise _read.bad(path, f"line {n}: no messages[-1].content.answer string")
        metadata = row.get("metadata")
        answers[uid] = (answer, metadata if isinstance(metadata, dict) else None)
    return answers


def markdown_counts(answer: str) -> dict[str, Any]:
    """The markdown elements arena-hard-auto's `add_markdown_info.py` counts for style
    control, code blocks removed first."""
    for block in _CODE_BLOCK.findall(answer):
        answer = answer.replace(block, "")
    return {
        "header_count": {
            f"h{k}": len(re.findall(rf"^#{{{k}}}\s", answer, re.MULTILINE)) for k in range(1, 7)
        },
        "list_count": {
            "ordered": len(re.findall(r"^\s*\d+\.\s", answer, re.MULTILINE)),
            "unordered": len(re.findall(r"^\s*[-*+]\s", answer, re.MULTILINE)),
        },
        "bold_count": {
            "**": len(re.findall(r"\*\*[^*\n]+\*\*", answer)),
            "__": len(re.findall(r"__[^_\n]+__", answer)),
        },
    }


@functools.cache
def _encoder() -> Any:
    """gpt-4o's tokenizer, as `add_markdown_info.py` uses, or None where tiktoken cannot have
    it (it downloads the encoding once): asked once per process."""
    try:
        import tiktoken

        return tiktoken.encoding_for_model("gpt-4o")
    except Exception:
        return None


def token_len(answer: str) -> int | None:
    """The answer's length in gpt-4o tokens, as style control reads it; None without the
    tokenizer (style control then says so)."""
    encoder = _encoder()
    return None if encoder is None else len(encoder.encode(answer, disallowed_special=()))


def answer_metadata(answer: str) -> dict[str, Any]:
    """What `add_markdown_info.py` adds to an answer: its token length (where the tokenizer is
    here), then its markdown counts."""
    length = token_len(answer)
    return {**({} if length is None else {"token_len": length}), **markdown_counts(answer)}


def answer_id(run: str, uid: str) -> str:
    """Stable across re-runs, unlike upstream's random shortuuid, so identical runs diff clean."""
    return hashlib.sha256(f"{run}/{uid}".encode()).hexdigest()[:22]


class ArenaHard(Benchmark):
    """One version (`bench`, upstream's `bench_name`); `benchmark.baseline` names one model
    whose answers replace the version's per-category baselines (Archon's claude-3.5-sonnet)."""

    bench: ClassVar[str]
    size: ClassVar[int]

    @property
    def questions(self) -> str:
        return files.question_file(self.bench)

    def judge_config(self) -> files.JudgeConfig:
        return files.read_judge_config(
            self.data.path(files.config_file(self.bench)), self.data.path(files.JUDGE_UTILS)
        )

    def baseline_for(self, category: str, config: files.JudgeConfig) -> str:
        chosen = self.settings.get("baseline")
        return str(chosen) if chosen else config.baseline(category)

    def load(self) -> list[Instance]:
        """The prompts in file order, each with its category's baseline answer; only the
        categories asked for (`benchmark.categories`) need their baseline's file."""
        path = self.data.path(self.questions)
        rows = _read.read_jsonl(path)
        _read.check_count(path, len(rows), self.size, "prompts")
        config = self.judge_config()
        wanted = self.settings.get("categories")
        answers: dict[str, dict[str, tuple[str, dict[str, Any] | None]]] = {}
        instances = []
        for n, row in enumerate(rows, 1):
            where = f"line {n}"
            uid = _read.text(path, row, "uid", where)
            category = _read.text(path, row, "category", where)
            meta: dict[str, Any] = {
                k: row[k] for k in ("cluster", "subcategory") if isinstance(row.get(k), str)
            }
            if wanted is None or category in wanted:
                if category not in config.settings:
                    raise _read.bad(path, f"{where}: category {category!r} has no judge setting")
                baseline = self.baseline_for(category, config)
                if baseline not in answers:
                    answers[baseline] = read_answers(
                        self.data.path(files.answer_file(self.bench, baseline))
                    )
                if uid not in answers[baseline]:
                    raise _read.bad(path, f"{where}: {baseline} has no answer to uid {uid}")
                answer, metadata = answers[baseline][uid]
                meta |= {
                    "reference_output": answer,
                    "reference_generator": baseline,
                    "reference_metadata": metadata,
                }
            instances.append(
                Instance(
                    id=uid,
                    turns=(_read.text(path, row, "prompt", where),),
                    category=category,
                    references=None,
                    meta=MappingProxyType(meta),
                )
            )
        _read.check_unique(path, (i.id for i in instances), "uid")
        return instances

    def output_path(self, run: RunDir, variant: str) -> Path:
        return run.native("model_answer", f"{run.path.name}.jsonl")

    def write_outputs(
        self,
        run: RunDir,
        variant: str,
        instances: Sequence[Instance],
        results: Sequence[InstanceResult],
    ) -> Path:
        model = run.path.name
        rows = []
        for inst, r in zip(instances, results, strict=True):
            if not r.outputs:
                continue
            answer = r.outputs[0]
            rows.append(
                {
                    "uid": inst.id,
                    "ans_id": answer_id(model, inst.id),
                    "model": model,
                    "messages": [
                        {"role": "user", "content": inst.turns[0]},
                        {"role": "assistant", "content": {"answer": answer}},
                    ],
                    "tstamp": r.finished_at,
                    "metadata": answer_metadata(answer),
                }
            )
        path = self.output_path(run, variant)
        write_jsonl(path, rows, ascii_only=False)
        return path
