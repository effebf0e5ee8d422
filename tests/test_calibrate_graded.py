"""`task=calibrate` for MT-Bench and FLASK: a judge re-grades published judgment files (synthetic
ones here, made of the real questions and evaluation set in ../shared/data) and is measured on
score agreement."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

from eval.benchmarks._read import read_jsonl
from eval.calibrate import graded
from eval.calibrate.scores import by_model
from eval.judges import flask as fj
from eval.judges import mt_bench as mj
from moa.types import CallOutcome, CallRecord, ChatMessage, Completion, GenerateConfig
from tests.kit.cli import MOA_BENCH, SHARED_DATA, environment, run

pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
MT = SHARED_DATA / "mt_bench"
FLASK = SHARED_DATA / "flask"
MODELS = ("model-a", "model-b")

# Given the request's user prompt, the judge's answer.
Answer = Callable[[str], str]


class PromptJudge:
    """A judge whose answer is a function of the user prompt it is sent."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.prompts: list[str] = []

    async def generate(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        *,
        sample: int = 0,
        tags: Mapping[str, str] | None = None,
    ) -> CallOutcome:
        self.prompts.append(messages[-1]["content"])
        completion = Completion(self.answer(messages[-1]["content"]), 10, 10, "stop")
        return CallOutcome(completion, CallRecord(key="", model=model, sample=sample))


def _fastchat_file(path: Path, questions: int = 6) -> dict[str, float]:
    """A FastChat `gpt-4_single.jsonl` of two models on the first questions of each category
    (so math-like ones, with references, too); returns the published score by user prompt."""
    prompts = mj.load_judge_prompts(MT / "judge_prompts.jsonl")
    rows = read_jsonl(MT / "question.jsonl")
    chosen = [r for c in {r["category"] for r in rows}
              for r in [r for r in rows if r["category"] == c][:1]][:questions]  # fmt: skip
    refs = {r["question_id"]: r["choices"][0]["turns"]
            for r in read_jsonl(MT / "reference_answer" / "gpt-4.jsonl")}  # fmt: skip
    scores: dict[str, float] = {}
    lines = []
    for m, model in enumerate(MODELS):
        answers = {q["question_id"]: [f"{model} answer {n} to {q['question_id']}" for n in (1, 2)]
                   for q in chosen}  # fmt: skip
        for k, match in enumerate(mj.make_matches(chosen, model, answers, prompts, refs)):
            user_prompt = mj.render_user_prompt(match)
            score = (k * 3 + m) % 9 + 1  # 1 to 9, so that one more is still a rating
            scores[user_prompt] = score
            lines.append(json.dumps({
                "question_id": match.question["question_id"], "model": model,
                "judge": ["gpt-4", match.prompt["name"]], "user_prompt": user_prompt,
                "judgment": f"Rating: [[{score}]]", "score": score, "turn": match.turn,
                "tstamp": 0.0,
            }))  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return scores


def _flask_file(path: Path, n: int = 8) -> dict[str, dict[str, int]]:
    """FLASK's review file of a model on the first `n` instances of the real evaluation set;
    returns the published skill scores by response."""
    published: dict[str, dict[str, int]] = {}
    lines = []
    for k, row in enumerate(read_jsonl(FLASK / "flask_evaluation.jsonl")[:n]):
        response = f"response {k} to instance {row['idx']}"
        scores = {s.lower(): (k + j) % 4 + 1 for j, s in enumerate(row["skill"])}  # 1 to 4
        published[response] = scores
        lines.append(json.dumps({**row, "target_txt": response, "review": f"Fine.\n{scores}",
                                 "score": scores, "total_tokens_step4": 10}))  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return published


async def _regrade_mt_bench(tmp_path: Path, shift: int) -> dict:
    path = tmp_path / "gpt-4_single.jsonl"
    scores = _fastchat_file(path)
    prompts = mj.load_judge_prompts(MT / "judge_prompts.jsonl")
    judgments = graded.single_judgments([path], prompts, [], None)
    judge = PromptJudge(lambda prompt: f"Rating: [[{scores[prompt] + shift}]]")
    result = by_model(await graded.regrade_single(judge, "x/judge", prompts, judgments))
    assert judge.prompts == [j.user_prompt for j in judgments]  # the same items, same order
    return result


async def test_mt_bench_a_judge_giving_the_published_scores_agrees_exactly(tmp_path: Path) -> None:
    result = await _regrade_mt_bench(tmp_path, 0)
    overall = result["overall"]
    assert overall["n"] == 2 * 12 and overall["failed"] == 0  # 6 questions, 2 turns, 2 models
    assert overall["exact"] == 1.0 and overall["within_1"] == 1.0
    assert overall["pearson"] == pytest.approx(1.0) and overall["spearman"] == pytest.approx(1.0)
    assert overall["mean_shift"] == 0
    assert set(result["models"]) == set(MODELS)


async def test_mt_bench_a_judge_one_point_higher(tmp_path: Path) -> None:
    overall = (await _regrade_mt_bench(tmp_path, 1))["overall"]
    assert overall["exact"] == 0.0 and overall["within_1"] == 1.0
    assert overall["mean_shift"] == pytest.approx(1.0)
    assert overall["pearson"] == pytest.approx(1.0)
    means = overall["mean_score"]
    assert means["new"] == pytest.approx(means["published"] + 1)


def test_mt_bench_limit_and_models_pick_the_first_items_in_order(tmp_path: Path) -> None:
    path = tmp_path / "gpt-4_single.jsonl"
    _fastchat_file(path)
    prompts = mj.load_judge_prompts(MT / "judge_prompts.jsonl")
    picked = graded.single_judgments([path], prompts, ["model-b"], 3)
    every = [j for j in mj.read_judgments(path) if j.model == "model-b"]
    assert picked == every[:3]
    with pytest.raises(Exception, match="model-c: not in the published file"):
        graded.single_judgments([path], prompts, ["model-c"], 3)


def test_a_judgment_not_made_of_fastchat_templates_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "gpt-4_single.jsonl"
    _fastchat_file(path)
    row = json.loads(path.read_text().splitlines()[0])
    path.write_text(json.dumps({**row, "user_prompt": "Rate this."}) + "\n")
    prompts = mj.load_judge_prompts(MT / "judge_prompts.jsonl")
    with pytest.raises(Exception, match="not one of FastChat's single-answer templates"):
        graded.single_judgments([path], prompts, [], None)


def _flask_answer(published: dict[str, dict[str, int]], shift: int) -> Answer:
    def answer(prompt: str) -> str:
        response = next(r for r in published if r in prompt)
        return f"Feedback.\n{ {k: v + shift for k, v in published[response].items()} }"

    return answer


@pytest.mark.parametrize("shift", [0, 1])
async def test_flask_regraded_skill_by_skill(tmp_path: Path, shift: int) -> None:
    path = tmp_path / "gpt4_review.jsonl"
    published = _flask_file(path)
    setup = fj.load_setup(
        FLASK / "gpt_review_prompt.jsonl",
        FLASK / "gpt_review_reviewer.jsonl",
        FLASK / "skillset_description.json",
    )
    reviews = graded.rubric_reviews([path], [], None)
    judge = PromptJudge(_flask_answer(published, shift))
    result = by_model(await graded.regrade_rubric(judge, "x/judge", setup, reviews))
    rows = read_jsonl(FLASK / "flask_evaluation.jsonl")[:8]
    # the requests are the rubric kind's, rebuilt from the review lines, in the file's order
    assert judge.prompts == [fj.render_prompt(setup, r, f"response {k} to instance {r['idx']}")
                             for k, r in enumerate(rows)]  # fmt: skip
    assert set(result["models"]) == {"gpt4"}
    overall = result["overall"]
    assert overall["n"] == 24 and overall["failed"] == 0  # 8 instances, 3 skills each
    assert overall["exact"] == (1.0 if shift == 0 else 0.0) and overall["within_1"] == 1.0
    assert overall["mean_shift"] == pytest.approx(shift)
    assert overall["pearson"] == pytest.approx(1.0)


def test_flask_reviews_in_the_first_published_spelling(tmp_path: Path) -> None:
    """FLASK's first reviews name the instruction `text` and the skills `metrics`."""
    path = tmp_path / "chatgpt_review.jsonl"
    _flask_file(path, 2)
    renamed = []
    for line in path.read_text().splitlines():
        row = json.loads(line)
        renamed.append({"question_id": row.pop("idx"), "text": row.pop("instruction"),
                        "metrics": row.pop("skill"), **row})  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in renamed))
    ((model, review), _) = graded.rubric_reviews([path], [], None)
    setup = fj.load_setup(
        FLASK / "gpt_review_prompt.jsonl",
        FLASK / "gpt_review_reviewer.jsonl",
        FLASK / "skillset_description.json",
    )
    item = graded._item(review)
    assert model == "chatgpt" and item["idx"] == 1
    assert "Readability: " in fj.render_prompt(setup, item, review.response)


def _cli(tmp_path: Path, benchmark: str, *extra: str) -> object:
    args = [
        MOA_BENCH, "task=calibrate", f"benchmark={benchmark}", "provider_override=scripted",
        f"calibrate.out_dir={tmp_path / 'calibrate'}", f"data_dir={SHARED_DATA}",
        f"results_dir={tmp_path / 'runs'}", f"cache.path={tmp_path / 'calls.sqlite'}", *extra,
    ]  # fmt: skip
    return run(args, environment())


def test_calibrate_without_the_published_file_is_refused_in_one_line(tmp_path: Path) -> None:
    done = _cli(tmp_path, "mt_bench")
    assert done.returncode != 0  # type: ignore[attr-defined]
    err = done.stderr.strip()  # type: ignore[attr-defined]
    assert len(err.splitlines()) == 1 and "calibrate.file=" in err and "gpt-4_single" in err
    assert not (tmp_path / "calibrate").exists()


@pytest.mark.parametrize("benchmark", ["mt_bench", "flask"])
def test_calibrate_end_to_end_with_the_scripted_judge(tmp_path: Path, benchmark: str) -> None:
    path = tmp_path / ("gpt-4_single.jsonl" if benchmark == "mt_bench" else "gpt4_review.jsonl")
    (_fastchat_file if benchmark == "mt_bench" else _flask_file)(path)
    done = _cli(tmp_path, benchmark, f"calibrate.file={path}", "calibrate.limit=5")
    assert done.returncode == 0, done.stdout + done.stderr  # type: ignore[attr-defined]
    (out,) = (tmp_path / "calibrate" / benchmark).iterdir()
    calibration = json.loads((out / "calibration.json").read_text())
    assert calibration["judge"].startswith("scripted/")
    assert calibration["benchmark"] == benchmark
    models = calibration["models"]
    assert set(models) == (set(MODELS) if benchmark == "mt_bench" else {"gpt4"})
    if benchmark == "mt_bench":  # 5 judgments per model, each one item
        assert all(m["n"] == 5 for m in models.values()) and calibration["calls"] == 10
    else:  # 5 reviews of 3 skills each
        assert models["gpt4"]["n"] + models["gpt4"]["failed"] == 15 and calibration["calls"] == 5
    table = (out / "calibration.md").read_text()
    assert "| overall |" in table and "within 1" in table
    assert (out / "calibration.png").stat().st_size > 1000
    again = _cli(tmp_path, benchmark, f"calibrate.file={path}", "calibrate.limit=5")
    assert again.returncode == 0  # type: ignore[attr-defined]
    assert json.loads((out / "calibration.json").read_text())["cached"] == calibration["calls"]
