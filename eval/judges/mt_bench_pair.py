"""MT-Bench against a baseline, faithful to FastChat's `llm_judge --mode pairwise-baseline`.

As for single grading (`eval.judges.mt_bench`), fschat is not a dependency, so the steps that
define the benchmark are restated: `gen_judgment.make_match` (ours as model_1, the baseline as
model_2; the pair-v2 / pair-math-v1 templates, multi-turn for turn 2, GPT-4's reference answers
for math, reasoning and coding), `common.play_a_match_pair` (two games, the second with the
answers' positions swapped; `[[A]]`, else `[[B]]`, else `[[C]]` for a tie, else "error") and
`show_result.display_result_pairwise` (a row with an error is dropped; games that disagree, or a
first game tied, are a tie; win, loss and tie counted per model, the baseline's row removed).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from eval.benchmarks.mt_bench import NEED_REF_CATEGORIES
from eval.judges.common import (
    JUDGE_TAGS,
    Failure,
    FailureKind,
    call_failure,
    count_failures,
    jsonl_records,
    judge_model_name,
    parse_records,
    settle_all,
)
from eval.judges.mt_bench import API_ERROR_OUTPUT, DEFAULT_JUDGE, JUDGE_CONFIG, Prompt
from eval.rundir import write_jsonl
from moa.types import ChatMessage, Generator

ERROR = "error"  # FastChat's winner when the verdict is unreadable or the call failed
TIE = "tie"
Game = Literal[1, 2]


def prompt_name(category: str, turn: int) -> str:
    """`make_judge_pairwise`: math-like categories get the reference-based template."""
    name = "pair-math-v1" if category in NEED_REF_CATEGORIES else "pair-v2"
    return name if turn == 1 else f"{name}-multi-turn"


@dataclass(frozen=True)
class PairMatch:
    """One question and turn, ours (model_1) against the baseline (model_2): `MatchPair`."""

    question: Mapping[str, Any]
    model_1: str
    model_2: str
    answer_1: Sequence[str]
    answer_2: Sequence[str]
    prompt: Prompt
    reference: Sequence[str] | None
    turn: int


def make_pair_matches(
    questions: Sequence[Mapping[str, Any]],
    model: str,
    answers: Mapping[int, Sequence[str]],
    baseline: str,
    baseline_answers: Mapping[int, Sequence[str]],
    prompts: Mapping[str, Prompt],
    references: Mapping[int, Sequence[str]],
) -> list[PairMatch]:
    """The matches `gen_judgment.py --mode pairwise-baseline` plays for one model, in its order:
    turn 1 of the other categories, of the math-like ones, then turn 2 likewise."""
    matches = []
    for turn in (1, 2):
        for math_like in (False, True):
            for q in questions:
                if (q["category"] in NEED_REF_CATEGORIES) != math_like:
                    continue
                if turn == 2 and len(q["turns"]) != 2:
                    continue
                qid = q["question_id"]
                if qid not in answers or qid not in baseline_answers:
                    raise ValueError(f"question {qid} lacks our answer or the baseline's")
                if math_like and qid not in references:
                    raise ValueError(f"no reference answer for question {qid}")
                matches.append(
                    PairMatch(
                        question=q,
                        model_1=model,
                        model_2=baseline,
                        answer_1=answers[qid],
                        answer_2=baseline_answers[qid],
                        prompt=prompts[prompt_name(q["category"], turn)],
                        reference=references[qid] if math_like else None,
                        turn=turn,
                    )
                )
    return matches


def render_game(match: PairMatch, game: Game) -> str:
    """`run_judge_pair`'s `template.format(...)`: game 1 shows model_1 as assistant A, game 2
    shows model_2 as A; the reference's second turn is given at turn 2 only."""
    a, b = (match.answer_1, match.answer_2) if game == 1 else (match.answer_2, match.answer_1)
    kwargs = {}
    if match.reference is not None:
        kwargs["ref_answer_1"] = match.reference[0]
        if match.turn == 2:
            kwargs["ref_answer_2"] = match.reference[1]
    template = match.prompt["prompt_template"]
    turns = match.question["turns"]
    if match.turn == 2:
        return template.format(
            question_1=turns[0],
            question_2=turns[1],
            answer_a_1=a[0],
            answer_b_1=b[0],
            answer_a_2=a[1],
            answer_b_2=b[1],
            **kwargs,
        )
    return template.format(question=turns[0], answer_a=a[0], answer_b=b[0], **kwargs)


def game_messages(match: PairMatch, user_prompt: str) -> list[ChatMessage]:
    """The judge's system prompt, then the filled template (an empty system prompt left out,
    as `to_openai_api_messages` leaves it)."""
    system = match.prompt["system_prompt"]
    head = [ChatMessage(role="system", content=system)] if system else []
    return [*head, ChatMessage(role="user", content=user_prompt)]


def parse_choice(judgment: str) -> str | Failure:
    """FastChat's `[[A]]` output format: "A", else "B", else "tie" for `[[C]]`, by substring."""
    for tag, choice in (("[[A]]", "A"), ("[[B]]", "B"), ("[[C]]", TIE)):
        if tag in judgment:
            return choice
    return Failure(FailureKind.PARSE, "no [[A]], [[B]] or [[C]] in the judgment")


_SEATS: Mapping[Game, Mapping[str, str]] = {
    1: {"A": "model_1", "B": "model_2"},
    2: {"A": "model_2", "B": "model_1"},
}


def game_winner(choice: str | Failure, game: Game) -> str:
    """A game's choice as FastChat records it: model_1, model_2, tie or error."""
    if isinstance(choice, Failure):
        return ERROR
    return _SEATS[game].get(choice, choice)


@dataclass(frozen=True)
class PairJudgment:
    """One line of FastChat's `model_judgment/<judge>_pair.jsonl`; an "error" winner has a
    failure (`g1_failure`, `g2_failure`)."""

    question_id: int
    model_1: str
    model_2: str
    g1_winner: str
    g2_winner: str
    judge: tuple[str, str]
    g1_user_prompt: str
    g1_judgment: str
    g2_user_prompt: str
    g2_judgment: str
    turn: int
    tstamp: float
    g1_failure: Failure | None = None
    g2_failure: Failure | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "question_id": self.question_id,
            "model_1": self.model_1,
            "model_2": self.model_2,
            "g1_winner": self.g1_winner,
            "g2_winner": self.g2_winner,
            "judge": list(self.judge),
            "g1_user_prompt": self.g1_user_prompt,
            "g1_judgment": self.g1_judgment,
            "g2_user_prompt": self.g2_user_prompt,
            "g2_judgment": self.g2_judgment,
            "turn": self.turn,
            "tstamp": self.tstamp,
        }

    @property
    def failures(self) -> tuple[Failure | None, Failure | None]:
        return self.g1_failure, self.g2_failure

    def outcome(self, model: str) -> str | None:
        """`model`'s result in this row as `show_result.py` counts it: win, loss or tie; None
        for a row it drops (a game in error) or a model not in it."""
        if ERROR in (self.g1_winner, self.g2_winner) or model not in (self.model_1, self.model_2):
            return None
        if self.g1_winner == TIE or self.g1_winner != self.g2_winner:
            return TIE
        winner = self.model_1 if self.g1_winner == "model_1" else self.model_2
        return "win" if winner == model else "loss"


_CALL_FAILED = Failure(FailureKind.CALL, f"judge call failed (judgment {API_ERROR_OUTPUT})")


def _read_choice(judgment: str) -> str | Failure:
    return _CALL_FAILED if judgment == API_ERROR_OUTPUT else parse_choice(judgment)


async def judge_pair_matches(
    generator: Generator, matches: Sequence[PairMatch], *, judge: str = DEFAULT_JUDGE
) -> list[PairJudgment]:
    """Play both games of every match concurrently; a failed call is FastChat's `$ERROR$`."""

    async def game(match: PairMatch, which: Game) -> tuple[str, str, str | Failure]:
        user_prompt = render_game(match, which)
        messages = game_messages(match, user_prompt)
        outcome = await generator.generate(judge, messages, JUDGE_CONFIG, tags=JUDGE_TAGS)
        if outcome.completion is None:
            return user_prompt, API_ERROR_OUTPUT, call_failure(outcome)
        return user_prompt, outcome.completion.text, parse_choice(outcome.completion.text)

    played = await settle_all(game(m, g) for m in matches for g in (1, 2))
    out = []
    for n, match in enumerate(matches):
        (p1, j1, c1), (p2, j2, c2) = played[2 * n], played[2 * n + 1]
        out.append(
            PairJudgment(
                question_id=match.question["question_id"],
                model_1=match.model_1,
                model_2=match.model_2,
                g1_winner=game_winner(c1, 1),
                g2_winner=game_winner(c2, 2),
                judge=(judge_model_name(judge), match.prompt["name"]),
                g1_user_prompt=p1,
                g1_judgment=j1,
                g2_user_prompt=p2,
                g2_judgment=j2,
                turn=match.turn,
                tstamp=time.time(),
                g1_failure=c1 if isinstance(c1, Failure) else None,
                g2_failure=c2 if isinstance(c2, Failure) else None,
            )
        )
    return out


def rescore(judgments: Sequence[PairJudgment]) -> list[PairJudgment]:
    """Both games' winners read again from their judgment texts, without calling any model."""
    out = []
    for j in judgments:
        c1, c2 = _read_choice(j.g1_judgment), _read_choice(j.g2_judgment)
        out.append(
            replace(
                j,
                g1_winner=game_winner(c1, 1),
                g2_winner=game_winner(c2, 2),
                g1_failure=c1 if isinstance(c1, Failure) else None,
                g2_failure=c2 if isinstance(c2, Failure) else None,
            )
        )
    return out


def judgment_path(root: Path, judge: str = DEFAULT_JUDGE) -> Path:
    """Where FastChat writes pairwise judgments: `model_judgment/<judge>_pair.jsonl`."""
    return root / "model_judgment" / f"{judge_model_name(judge)}_pair.jsonl"


def write_judgments(path: Path, judgments: Sequence[PairJudgment]) -> None:
    """One `json.dumps` line each, as `play_a_match_pair` appends them, written whole."""
    write_jsonl(path, (j.to_json() for j in judgments))


def read_judgments(path: Path) -> list[PairJudgment]:
    """A pair judgment file, FastChat's or ours, with its stored winners; an "error" winner
    gets a failure (a call's when its judgment is `$ERROR$`). Damage is a one-line
    `RunFileError` naming the file and the line."""
    return parse_records(path, jsonl_records(path), _judgment)


def _stored_failure(winner: str, judgment: str) -> Failure | None:
    if judgment == API_ERROR_OUTPUT:
        return _CALL_FAILED
    if winner == ERROR:
        return Failure(FailureKind.PARSE, 'stored winner is "error"')
    return None


def _judgment(row: Mapping[str, Any]) -> PairJudgment:
    winners = (row["g1_winner"], row["g2_winner"])
    if not all(w in ("model_1", "model_2", TIE, ERROR) for w in winners):
        raise ValueError(f"winners {winners!r} are not model_1, model_2, tie or error")
    return PairJudgment(
        question_id=row["question_id"],
        model_1=row["model_1"],
        model_2=row["model_2"],
        g1_winner=row["g1_winner"],
        g2_winner=row["g2_winner"],
        judge=(row["judge"][0], row["judge"][1]),
        g1_user_prompt=row["g1_user_prompt"],
        g1_judgment=row["g1_judgment"],
        g2_user_prompt=row["g2_user_prompt"],
        g2_judgment=row["g2_judgment"],
        turn=row["turn"],
        tstamp=row["tstamp"],
        g1_failure=_stored_failure(row["g1_winner"], row["g1_judgment"]),
        g2_failure=_stored_failure(row["g2_winner"], row["g2_judgment"]),
    )


@dataclass(frozen=True)
class PairScores:
    """`show_result.py --mode pairwise-baseline` for one model: its win, loss and tie counts
    over the rows kept and the three rates it prints (a tie is half a win in the adjusted one,
    by which it sorts)."""

    model: str
    win: int
    loss: int
    tie: int
    win_rate: float | None
    loss_rate: float | None
    win_rate_adjusted: float | None
    failures: dict[str, int]


def summarize(judgments: Sequence[PairJudgment], baseline: str | None) -> dict[str, PairScores]:
    """Every model's scores but the baseline's, by name, over the rows the baseline plays in
    (every row when there is none, as `--mode pairwise-all` counts them)."""
    if baseline is not None:
        judgments = [j for j in judgments if baseline in (j.model_1, j.model_2)]
    models = {m for j in judgments for m in (j.model_1, j.model_2)} - {baseline}
    table = {}
    for model in sorted(models):
        mine = [j for j in judgments if model in (j.model_1, j.model_2)]
        outcomes = [o for j in mine if (o := j.outcome(model)) is not None]
        win, loss, tie = (outcomes.count(k) for k in ("win", "loss", TIE))
        n = len(outcomes)
        table[model] = PairScores(
            model=model,
            win=win,
            loss=loss,
            tie=tie,
            win_rate=win / n if n else None,
            loss_rate=loss / n if n else None,
            win_rate_adjusted=(win + 0.5 * tie) / n if n else None,
            failures=count_failures(f for j in mine for f in j.failures),
        )
    return table
