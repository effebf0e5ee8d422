"""FLASK: 1,740 instructions (89 in FLASK-Hard), each scored 1-5 on its own three skills.

Besides the instances this reads the files the FLASK judge is built from (skill rubrics, review
prompts, reviewer settings) and returns them parsed and checked; rendering is the judge's job
(`conf/judge_spec/flask.yaml`). Native file: `model_output/<variant>.jsonl` (`{question_id,
text}`, as FLASK's gpt_review reads).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from eval.benchmarks import _read
from eval.benchmarks.base import Instance
from eval.benchmarks.benchmark import Benchmark
from eval.benchmarks.fetch import fetch
from eval.rundir import InstanceResult, RunDir, write_jsonl

EVALUATION = "flask/flask_evaluation.jsonl"
HARD = "flask/flask_hard_evaluation.jsonl"
SKILLSET = "flask/skillset_description.json"
REVIEW_PROMPTS = "flask/gpt_review_prompt.jsonl"
REVIEWERS = "flask/gpt_review_reviewer.jsonl"

SIZE = 1740
HARD_SIZE = 89
SKILL_COUNT = 12
SCORES = range(1, 6)


@dataclass(frozen=True)
class Skill:
    """One of the 12 FLASK skills: what it checks and what each score 1-5 means."""

    name: str
    criteria: str
    rubric: Mapping[int, str]


@dataclass(frozen=True)
class ReviewPrompt:
    """A FLASK judge template; `defaults` fill its `{prompt1}`/`{prompt2}` slots."""

    prompt_id: int
    system_prompt: str
    template: str
    defaults: Mapping[str, str]
    description: str


@dataclass(frozen=True)
class Reviewer:
    """The judge model and decoding settings FLASK used with one review prompt."""

    reviewer_id: str
    prompt_id: int
    temperature: float
    max_tokens: int
    description: str


def load_flask(
    *, data_dir: Path | str | None = None, cache_dir: Path | str | None = None, hard: bool = False
) -> list[Instance]:
    """FLASK (or with `hard`, FLASK-Hard) in file order, id = `idx`, reference = `answer`."""
    relpath, size = (HARD, HARD_SIZE) if hard else (EVALUATION, SIZE)
    path = fetch(relpath, data_dir=data_dir, cache_dir=cache_dir)
    rows = _read.read_jsonl(path)
    _read.check_count(path, len(rows), size, "instances")
    instances = [_instance(path, row, f"record {n}") for n, row in enumerate(rows, 1)]
    _read.check_unique(path, (i.id for i in instances), "idx")
    return instances


def _instance(path: Path, row: Mapping[str, Any], where: str) -> Instance:
    difficulty = row.get("difficulty")
    # Two rows of the published set carry -1 instead of a level name; keep what is there.
    if not isinstance(difficulty, str | int):
        raise _read.bad(path, f"{where}: field 'difficulty' is missing")
    return Instance(
        id=str(_read.integer(path, row, "idx", where)),
        turns=(_read.text(path, row, "instruction", where),),
        category=None,
        references=(_read.text(path, row, "answer", where),),
        meta=MappingProxyType(
            {
                "skill": _read.texts(path, row, "skill", where),
                "domain": _read.texts(path, row, "domain", where),
                "task": _read.text(path, row, "task", where),
                "difficulty": difficulty,
            }
        ),
    )


def load_skills(
    *, data_dir: Path | str | None = None, cache_dir: Path | str | None = None
) -> dict[str, Skill]:
    """The skill rubrics by skill name, in file order."""
    return read_skills(fetch(SKILLSET, data_dir=data_dir, cache_dir=cache_dir))


def read_skills(path: Path) -> dict[str, Skill]:
    """`skillset_description.json`, checked: 12 skills, each with criteria and a 1-5 rubric."""
    rows = _read.read_json_records(path)
    _read.check_count(path, len(rows), SKILL_COUNT, "skills")
    skills: dict[str, Skill] = {}
    for n, row in enumerate(rows, 1):
        where = f"record {n}"
        scoring = row.get("Scoring")
        if not isinstance(scoring, dict) or sorted(scoring) != [str(s) for s in SCORES]:
            raise _read.bad(path, f"{where}: field 'Scoring' must map each score 1-5 to a text")
        skill = Skill(
            name=_read.text(path, row, "Skill", where),
            criteria=_read.text(path, row, "Criteria", where),
            rubric=MappingProxyType(
                {s: _read.text(path, scoring, str(s), f"{where} score {s}") for s in SCORES}
            ),
        )
        if skill.name in skills:
            raise _read.bad(path, f"skill {skill.name!r} occurs more than once")
        skills[skill.name] = skill
    return skills


def load_review_prompts(
    *, data_dir: Path | str | None = None, cache_dir: Path | str | None = None
) -> dict[int, ReviewPrompt]:
    """The judge templates by `prompt_id` (2 is the one that shows the reference answer)."""
    return read_review_prompts(fetch(REVIEW_PROMPTS, data_dir=data_dir, cache_dir=cache_dir))


def read_review_prompts(path: Path) -> dict[int, ReviewPrompt]:
    """`gpt_review/src/prompt.jsonl`, checked, by `prompt_id`."""
    prompts: dict[int, ReviewPrompt] = {}
    for n, row in enumerate(_read.read_jsonl(path), 1):
        where = f"record {n}"
        defaults = row.get("defaults")
        if not isinstance(defaults, dict) or not all(isinstance(v, str) for v in defaults.values()):
            raise _read.bad(path, f"{where}: field 'defaults' is not an object of strings")
        prompt = ReviewPrompt(
            prompt_id=_read.integer(path, row, "prompt_id", where),
            system_prompt=_read.text(path, row, "system_prompt", where),
            template=_read.text(path, row, "prompt_template", where),
            defaults=MappingProxyType(defaults),
            description=_read.text(path, row, "description", where, empty=True),
        )
        if prompt.prompt_id in prompts:
            raise _read.bad(path, f"prompt_id {prompt.prompt_id} occurs more than once")
        prompts[prompt.prompt_id] = prompt
    if not prompts:
        raise _read.bad(path, "holds no review prompt")
    return prompts


def load_reviewers(
    *, data_dir: Path | str | None = None, cache_dir: Path | str | None = None
) -> list[Reviewer]:
    """The reviewer settings in file order, one per review prompt."""
    return read_reviewers(fetch(REVIEWERS, data_dir=data_dir, cache_dir=cache_dir))


def read_reviewers(path: Path) -> list[Reviewer]:
    """`gpt_review/src/reviewer.jsonl`, checked, in file order."""
    reviewers: list[Reviewer] = []
    for n, row in enumerate(_read.read_jsonl(path), 1):
        where = f"record {n}"
        settings = row.get("metadata")
        if not isinstance(settings, dict):
            raise _read.bad(path, f"{where}: field 'metadata' is missing")
        temperature = settings.get("temperature")
        if not isinstance(temperature, int | float) or isinstance(temperature, bool):
            raise _read.bad(path, f"{where}: metadata.temperature is missing or not a number")
        reviewers.append(
            Reviewer(
                reviewer_id=_read.text(path, row, "reviewer_id", where),
                prompt_id=_read.integer(path, row, "prompt_id", where),
                temperature=float(temperature),
                max_tokens=_read.integer(path, settings, "max_tokens", f"{where} metadata"),
                description=_read.text(path, row, "description", where, empty=True),
            )
        )
    _read.check_unique(path, (r.prompt_id for r in reviewers), "prompt_id")
    if not reviewers:
        raise _read.bad(path, "holds no reviewer")
    return reviewers


class Flask(Benchmark):
    name = "flask"
    hard = False

    def load(self) -> list[Instance]:
        return load_flask(
            data_dir=self.data.data_dir, cache_dir=self.data.cache_dir, hard=self.hard
        )

    def output_path(self, run: RunDir, variant: str) -> Path:
        return run.native("model_output", f"{variant}.jsonl")

    def write_outputs(
        self,
        run: RunDir,
        variant: str,
        instances: Sequence[Instance],
        results: Sequence[InstanceResult],
    ) -> Path:
        rows = [
            {"question_id": int(inst.id), "text": r.outputs[0]}
            for inst, r in zip(instances, results, strict=True)
            if r.outputs
        ]
        path = self.output_path(run, variant)
        write_jsonl(path, rows, ascii_only=False)
        return path


BENCHMARK = Flask
