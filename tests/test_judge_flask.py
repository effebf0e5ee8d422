"""FLASK judge: prompts checked to the byte against FLASK's `gen_prompt`, restated here."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from eval.benchmarks.flask import Skill
from eval.judges import flask
from eval.judges.common import Failure
from moa.types import GenerateConfig

from .fakes import FakeJudge

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "flask"
needs_data = pytest.mark.skipif(
    not (DATA / "gpt_review_prompt.jsonl").exists(), reason=f"benchmark data not found at {DATA}"
)
RESPONSE = "A made-up response with {braces} and a {question} placeholder.\n"


def flask_gen_prompt(
    reviewer_jsons: list[dict[str, Any]],
    prompt_jsons: list[dict[str, Any]],
    skills_jsons: list[dict[str, Any]],
    response: str,
    item: dict[str, Any],
) -> tuple[str, str]:
    """FLASK `gpt_review/gpt4_eval.py` `gen_prompt`, restated literally as the oracle."""
    reviewer_idx = 1
    prompt_id = reviewer_jsons[reviewer_idx]["prompt_id"]
    prompt_json = prompt_jsons[prompt_id - 1]
    assert prompt_json["prompt_id"] == prompt_id

    sys_prompt = prompt_json["system_prompt"]
    prompt_template = prompt_json["prompt_template"]
    defaults = prompt_json["defaults"]

    skills = ""
    metric_list = item["skill"]
    for label in metric_list:
        for skill in skills_jsons:
            if label in skill["Skill"]:
                name = skill["Skill"]
                criteria = skill["Criteria"]
                skills += f"\n{name}: {criteria}"
                scoring = skill["Scoring"]
                skills += f"\nScore 1: {scoring['1']}"
                skills += f"\nScore 2: {scoring['2']}"
                skills += f"\nScore 3: {scoring['3']}"
                skills += f"\nScore 4: {scoring['4']}"
                skills += f"\nScore 5: {scoring['5']}\n\n"
                break
    prompt = prompt_template.format(
        question=item["instruction"],
        response=response,
        skills=skills,
        num=3,
        sample_answer=item["answer"],
        **defaults,
    )
    return sys_prompt, prompt


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _setup() -> flask.Setup:
    return flask.load_setup(
        DATA / "gpt_review_prompt.jsonl",
        DATA / "gpt_review_reviewer.jsonl",
        DATA / "skillset_description.json",
    )


@needs_data
@pytest.mark.parametrize("idx", [1, 2, 500, 1740])
def test_rendered_prompt_equals_flasks_to_the_byte(idx: int) -> None:
    items = _jsonl(DATA / "flask_evaluation.jsonl")
    item = next(i for i in items if i["idx"] == idx)
    system, prompt = flask_gen_prompt(
        _jsonl(DATA / "gpt_review_reviewer.jsonl"),
        _jsonl(DATA / "gpt_review_prompt.jsonl"),
        json.loads((DATA / "skillset_description.json").read_text(encoding="utf-8")),
        RESPONSE,
        item,
    )
    assert flask.build_messages(_setup(), item, RESPONSE) == [
        {"role": "system", "content": system},
        {"role": "user", "content": prompt},
    ]
    assert "[Ground truth Answer]\n" + item["answer"] in prompt
    assert all(f"\n{skill}: " in prompt for skill in item["skill"])


@needs_data
def test_an_instance_with_logical_skills_gets_their_rubrics() -> None:
    item = next(
        i
        for i in _jsonl(DATA / "flask_evaluation.jsonl")
        if {"Logical Correctness", "Logical Robustness"} <= set(i["skill"])
    )
    prompt = flask.render_prompt(_setup(), item, RESPONSE)
    assert prompt.count("\nScore 5: ") == 3


@needs_data
def test_judge_settings_are_what_flask_sends_unless_the_reviewer_files_are_asked_for() -> None:
    """FLASK's `gpt4_eval.py` sends model and messages only: by default, the API's defaults.
    The reviewer file's settings (which FLASK lists but never sends) on request."""
    setup = _setup()
    assert setup.config == GenerateConfig()
    assert setup.system_prompt.startswith("You are a helpful and precise assistant")
    assert flask.DEFAULT_JUDGE == "openai/gpt-4-0613"
    listed = GenerateConfig(temperature=0.2, max_tokens=1024)
    assert flask.reviewer_config(DATA / "gpt_review_reviewer.jsonl") == listed
    files = (
        DATA / "gpt_review_prompt.jsonl",
        DATA / "gpt_review_reviewer.jsonl",
        DATA / "skillset_description.json",
    )
    assert flask.load_setup(*files, reviewer_settings=True).config == listed
    with pytest.raises(ValueError, match="not both"):
        flask.load_setup(*files, config=listed, reviewer_settings=True)


REVIEW = """Logical Correctness: the answer is right.
Readability: clear.

{'logical_correctness': 4, 'Readability': 5,
 'Conciseness': 'Not Applicable'}"""


def test_scores_are_parsed_as_flask_parses_them() -> None:
    assert flask.parse_score(REVIEW) == {
        "logical correctness": 4,
        "readability": 5,
        "conciseness": "N/A",
    }
    assert flask.parse_score("{'a': 1} then {'Factuality': 'NA'}") == {"factuality": "N/A"}


@pytest.mark.parametrize(
    ("review", "reason"),
    [
        ("Scores: factuality 4", "no {...}"),
        ("{'factuality': 4", "no {...}"),
        ("{factuality: 4}", "unreadable"),
        ("{4, 5}", "set, not a dict"),
    ],
)
def test_unparseable_reviews_are_failures_with_a_reason(review: str, reason: str) -> None:
    parsed = flask.parse_score(review)
    assert isinstance(parsed, Failure) and parsed.kind == "parse"
    assert reason in parsed.reason


def _review(score: Mapping[str, Any], review: str | None = "r") -> flask.Review:
    return flask.Review({"idx": 1}, "resp", review, score)


def test_skills_are_averaged_as_aggregate_skill_does() -> None:
    reviews = [
        _review({"logical correctness": 4, "readability": 5, "conciseness": "N/A"}),
        _review({"logical correctness": "2", "readability": 3, "factuality": "4/5"}),
        _review({"commonsense understanding": 5, "logical": 1}),
        _review({"overall": 3, "harmlessness": 5, "completeness": 1}),
        _review({}, review="unparseable"),
        _review({}, review=None),  # a failed call: not in FLASK's review file
    ]
    table = flask.aggregate_skills(reviews)
    order = ["correctness", "commonsense", "completeness", "readability", "harmlessness"]
    assert list(table.skills) == order
    assert table.skills["correctness"] == flask.SkillScore(6.0, 2)
    assert table.skills["correctness"].average == 3.0
    assert table.skills["readability"].average == 4.0
    assert table.n_reviews == 5
    assert table.n_not_three_scores == 2  # the 2-key review and the empty one
    assert table.n_not_applicable == 1
    assert table.n_unusable == 3  # "4/5", a bare "logical" key, and "overall"


def _item(idx: int, instruction: str) -> dict[str, Any]:
    return {
        "idx": idx,
        "instruction": instruction,
        "answer": "ref",
        "skill": ["Readability", "Logical Correctness", "Conciseness"],
    }


async def test_judging_records_failures_and_round_trips(tmp_path: Path) -> None:
    setup = flask.Setup(
        system_prompt="sys",
        prompt_template="{prompt1}{skills}[I]{question}[R]{response}[A]{sample_answer}",
        defaults={"prompt1": "p1"},
        skills=[
            Skill(s, "c", {k: f"s{k}" for k in range(1, 6)})
            for s in ("Readability", "Logical Correctness", "Conciseness")
        ],
        config=GenerateConfig(temperature=0.2, max_tokens=1024),
    )
    judge = FakeJudge(
        {"good": REVIEW, "vague": "Fine overall.", "broken": None},
        error="permanent 401: bad key",
        input_tokens=900,
        output_tokens=100,
    )
    items = [(_item(3, "vague"), "r3"), (_item(1, "good"), "r1"), (_item(2, "broken"), "r2")]
    out = await flask.judge_responses(judge, items, setup)

    assert {(c.model, c.config, c.tags["role"]) for c in judge.calls} == {
        ("openai/gpt-4-0613", setup.config, "judge")
    }
    vague, good, broken = out
    assert good.score == {"logical correctness": 4, "readability": 5, "conciseness": "N/A"}
    assert good.total_tokens == 1000
    assert vague.score == {} and vague.failure is not None and vague.failure.kind == "parse"
    assert broken.failure is not None and "401" in broken.failure.reason

    path = tmp_path / "review.jsonl"
    flask.write_reviews(path, out)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["idx"] for line in lines] == [1, 3]  # sorted by idx, failed call left out
    assert list(lines[0])[-4:] == ["target_txt", "review", "score", "total_tokens_step4"]
    back = flask.rescore(flask.read_reviews(path))
    assert [r.score for r in back] == [good.score, {}]
    assert back[1].failure == vague.failure
    table = flask.aggregate_skills([*back, broken])
    assert table.skills["correctness"].average == 4.0
    assert table.failures == {"call": 1, "parse": 1}
