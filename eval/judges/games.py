"""The `games` judge kind: Arena-Hard-Auto's judge, two games per prompt against a baseline.

Game 1 shows the baseline's answer as A and ours as B, game 2 the other way round; each is the
version's system prompt for the prompt's category and its user template (`config/<bench>.yaml`
and `utils/judge_utils.py` upstream, read as data at run time), at the config's temperature and
max_tokens. The verdict is read as the version's `gen_judgment.py` reads it: v0.1 (3071ef9) the
first pattern's one distinct label, asking again once when there is none
(`number_of_judgment_attempts: 2`); v2.0 (196f6b8) each pattern in order on the upper-cased
text, its last label. The pairwise kind runs alpaca-eval's annotators only, so this is a kind of
its own. Native file: `model_judgment/<judge>/<run>.jsonl` in arena-hard-auto's current layout
(keyed by `uid`); metrics: `eval.judges.arena_hard_scores`.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from eval.benchmarks import Instance
from eval.benchmarks import arena_hard_files as files
from eval.benchmarks.arena_hard import answer_metadata
from eval.judges import arena_hard_scores as scores
from eval.judges.common import (
    JUDGE_TAGS,
    Failure,
    FailureKind,
    call_failure,
    count_failures,
    coverage,
    is_complete,
    jsonl_records,
    judge_error,
    judge_model_name,
    parse_records,
    settle_all,
)
from eval.judges.kind import Judged, JudgeKind
from eval.judges.readings import Reading, Verdict, check_rows
from eval.judges.spec import JudgeSpec
from eval.rundir import RunFileError, write_jsonl
from moa.errors import ConfigError
from moa.types import ChatMessage, Completion, GenerateConfig

if TYPE_CHECKING:
    import random

    from eval.rundir import InstanceResult, RunDir, RunMetrics
    from moa.client import ModelClient
    from moa.mixture import MixtureSpec
    from moa.types import Generator

CONTINUE = "continue your judgment and finish by outputting a final verdict label"
LABELS = ("A>>B", "A>B", "A=B", "B>A", "B>>A")
_ANSWER_A = re.compile(
    r"<\|The Start of Assistant A's Answer\|>\n(.*?)\n<\|The End of Assistant A's Answer\|>",
    re.DOTALL,
)


def parse_label(text: str, patterns: Sequence[str], style: str) -> tuple[str | None, bool]:
    """The verdict label and whether the reference would ask again for one."""
    if style == "unique_first_pattern":  # v0.1 (3071ef9) get_score
        matches = [m for m in re.findall(patterns[0], text) if m != ""]
        if not matches:
            return None, True
        return (matches[0].strip("\n"), False) if len(set(matches)) == 1 else (None, False)
    for pattern in patterns:  # v2.0 (196f6b8) get_score
        matches = [m for m in re.findall(pattern, text.upper()) if m != ""]
        if matches:
            return matches[-1].strip("\n"), False
    return None, False


@dataclass(frozen=True)
class Game:
    """One game: its verdict label (None: unreadable or not judged), the judge's text and the
    messages it was first sent."""

    score: str | None
    judgment: str
    prompt: list[dict[str, str]]
    failure: Failure | None = None

    def to_json(self) -> dict[str, Any] | None:
        if self.failure is not None and self.failure.kind is FailureKind.CALL:
            return None  # as gen_judgment.py records a call that returned nothing
        return {"score": self.score, "judgment": {"answer": self.judgment}, "prompt": self.prompt}


@dataclass(frozen=True)
class Judgment:
    """One prompt's two games, a line of the native file."""

    uid: str
    category: str
    judge: str
    model: str
    baseline: str
    games: tuple[Game, Game]

    def to_json(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "category": self.category,
            "judge": self.judge,
            "model": self.model,
            "baseline": self.baseline,
            "games": [g.to_json() for g in self.games],
        }

    @property
    def labels(self) -> tuple[str | None, str | None]:
        return self.games[0].score, self.games[1].score


_NOT_JUDGED = Failure(FailureKind.CALL, "the judge returned nothing (a null game)")


def _unread(label: str | None, category: str) -> Failure | None:
    """A parse failure for no label or one outside the version's set: v0.1's `show_result.py`
    skips such a game, v2.0's has no score for it, so it is counted unparseable either way."""
    if label is None:
        return Failure(FailureKind.PARSE, "no verdict label in the judgment")
    if label not in scores.labels(category == files.V01):
        return Failure(FailureKind.PARSE, f"verdict label {label!r} is not one the version scores")
    return None


def _game(raw: Any, patterns: Sequence[str] | None, style: str, category: str) -> Game:
    if raw is None:
        return Game(None, "", [], _NOT_JUDGED)
    text = raw["judgment"]
    text = text["answer"] if isinstance(text, dict) else str(text)
    label = raw.get("score") if patterns is None else parse_label(text, patterns, style)[0]
    prompt = raw.get("prompt") or []
    if not prompt and raw.get("user_prompt"):  # v0.1's layout keeps the user prompt only
        prompt = [{"role": "user", "content": raw["user_prompt"]}]
    label = None if label is None else str(label)
    return Game(label, text, list(prompt), _unread(label, category))


def read_judgments(
    path: Path, patterns: Sequence[str] | None = None, style: str = ""
) -> list[Judgment]:
    """A judgment file, ours or the reference's (v2.0's `uid` layout or v0.1's `question_id`
    one), each game's label as stored, or read again from its text with `patterns` read as
    `style` says (`parse_label`); damage is one `RunFileError` line."""

    def parse(row: Mapping[str, Any]) -> Judgment:
        games = row["games"]
        if not isinstance(games, list) or len(games) != 2:
            raise ValueError("games is not a list of two")
        category = str(row.get("category") or files.V01)
        return Judgment(
            uid=str(row["uid"] if "uid" in row else row["question_id"]),
            category=category,
            judge=str(row.get("judge", "")),
            model=str(row["model"]),
            baseline=str(row.get("baseline") or ""),
            games=(
                _game(games[0], patterns, style, category),
                _game(games[1], patterns, style, category),
            ),
        )

    return parse_records(path, jsonl_records(path), parse)


def _counts(metadata: Mapping[str, Any]) -> list[float]:
    """An answer's metadata as the reference's style tensor row: each count, summed."""
    return [float(v if isinstance(v, int) else sum(v.values())) for v in metadata.values()]


def _mean_score(labels: tuple[str | None, str | None]) -> float | None:
    got = scores.v20_scores([labels])
    return None if got is None else 100.0 * sum(got) / len(got)


class Games(JudgeKind):
    kind = "games"
    runs: ClassVar[Mapping[str, tuple[Any, ...]]] = {
        "messages": ("system_user",),
        "decoding": ("config",),
        "verdict": ("unique_first_pattern", "last_match_in_order"),
        "swap": ({"policy": "both_orders"},),
        "baseline": ("reference",),
        "native_file": ("model_judgment/{judge}/{run}.jsonl",),
        "metric": ("bradley_terry", "mean_battle_score"),
    }

    def __init__(self, spec: JudgeSpec, benchmark: Judged) -> None:
        super().__init__(spec, benchmark)
        if spec.source("source") != "arena_hard":
            raise ConfigError(f"judge spec {spec.name!r}: template.source must be arena_hard")
        self.bench = spec.source("bench")
        attempts = spec.template.get("attempts")
        self.attempts = None if attempts is None else int(attempts)
        self.controls = tuple(str(c) for c in spec.template.get("style_control") or ())

    @functools.cached_property
    def config(self) -> files.JudgeConfig:
        data = self.benchmark.data
        return files.read_judge_config(
            data.path(files.config_file(self.bench)), data.path(files.JUDGE_UTILS)
        )

    def _decoding(self) -> GenerateConfig:
        return GenerateConfig(
            temperature=self.config.temperature, max_tokens=self.config.max_tokens
        )

    def messages(self, category: str, question: str, a: str, b: str) -> list[ChatMessage]:
        """The game's request: the category's system prompt, the filled user template."""
        user = self.config.prompt_template.format(QUESTION=question, ANSWER_A=a, ANSWER_B=b)
        return [
            ChatMessage(role="system", content=self.config.system_prompt(category)),
            ChatMessage(role="user", content=user),
        ]

    def _pairs(
        self, instances: Sequence[Instance], outputs: Sequence[Sequence[str] | None]
    ) -> list[tuple[Instance, str]]:
        return [(i, o[0]) for i, o in zip(instances, outputs, strict=True) if o]

    async def play_game(
        self, generator: Generator, judge: str, category: str, messages: list[ChatMessage]
    ) -> Game:
        """One game, asking again as the v0.1 reference does when the text has no label; public so
        that a calibration plays a published game exactly as a run does."""
        patterns, style = self.config.regex_patterns, self.spec.verdict
        prompt = [{"role": m["role"], "content": m["content"]} for m in messages]
        conv = list(messages)
        text = ""
        label: str | None = None
        for _ in range(self.attempts or 1):
            outcome = await generator.generate(judge, conv, self._decoding(), tags=JUDGE_TAGS)
            if outcome.completion is None:
                return Game(None, text, prompt, call_failure(outcome))
            answer = outcome.completion.text
            text = answer if self.attempts is None else f"{text}\n{answer}"
            label, again = parse_label(text, patterns, style)
            if not again:
                break
            conv += [
                ChatMessage(role="assistant", content=answer),
                ChatMessage(role="user", content=CONTINUE),
            ]
        return Game(label, text, prompt, _unread(label, category))

    async def _judge_one(
        self, generator: Generator, judge: str, model: str, inst: Instance, ours: str
    ) -> Judgment:
        category = inst.category or self.bench
        baseline = str(inst.meta["reference_output"])
        question = inst.turns[0]
        first, second = await asyncio.gather(
            self.play_game(
                generator, judge, category, self.messages(category, question, baseline, ours)
            ),
            self.play_game(
                generator, judge, category, self.messages(category, question, ours, baseline)
            ),
        )
        return Judgment(
            inst.id,
            category,
            judge_model_name(judge),
            model,
            str(inst.meta["reference_generator"]),
            (first, second),
        )

    def path(self, run: RunDir, judge: str) -> Path:
        name = (self.spec.native_file or "").format(
            judge=judge_model_name(judge), run=run.path.name
        )
        return run.native(*name.split("/"))

    async def judge(
        self,
        client: ModelClient,
        address: str,
        run: RunDir,
        mixture: MixtureSpec,
        instances: Sequence[Instance],
        results: Sequence[InstanceResult],
    ) -> dict[str, Any]:
        model = run.path.name
        pairs = self._pairs(instances, [r.outputs for r in results])
        judgments = await settle_all(
            self._judge_one(client, address, model, i, o) for i, o in pairs
        )
        write_jsonl(self.path(run, address), [j.to_json() for j in judgments], ascii_only=False)
        metrics = self.metrics_of(judgments, expected=len(instances))
        if self.controls and metrics["complete"]:
            metrics |= self._style_controlled(judgments, pairs)
        return metrics

    def _style_controlled(
        self, judgments: Sequence[Judgment], ours: Sequence[tuple[Instance, str]]
    ) -> dict[str, Any]:
        """v2.0's score with style control per category, where every answer's token length is
        known (ours needs tiktoken's gpt-4o encoding here, the baseline's its file's metadata);
        else the reason there is none."""
        by_uid = {i.id: (i, answer) for i, answer in ours}
        features: dict[str, list[float]] = {}
        for uid, (inst, answer) in by_uid.items():
            mine, theirs = answer_metadata(answer), inst.meta.get("reference_metadata") or {}
            if "token_len" not in mine or "token_len" not in theirs:
                whose = (
                    "ours (no tiktoken encoding here)"
                    if "token_len" not in mine
                    else (f"{inst.meta['reference_generator']}'s (no metadata in its file)")
                )
                return {"style_controlled_unavailable": f"no token length for {whose} answers"}
            features[uid] = scores.style_features(_counts(mine), _counts(theirs))
        out = {}
        for category in sorted({j.category for j in judgments}):
            battles, styles = [], []
            for j in judgments:
                got = scores.v20_scores([j.labels]) if j.category == category else None
                if got is not None:
                    battles += got
                    styles += [features[j.uid]] * len(got)
            if battles:
                try:
                    score = scores.style_controlled(battles, styles, self.controls)
                except ValueError as exc:
                    return {"style_controlled_unavailable": f"{category}: {exc}"}
                out[category] = score.to_json()
        return {"style_controlled": out}

    async def plan(
        self,
        generator: Generator,
        address: str,
        mixture: MixtureSpec,
        instances: Sequence[Instance],
        outputs: Sequence[Sequence[str] | None],
    ) -> None:
        """Both games' first requests per answered prompt (a retry depends on the answer)."""
        config = self._decoding()
        for inst, ours in self._pairs(instances, outputs):
            category, baseline = inst.category or self.bench, str(inst.meta["reference_output"])
            for a, b in ((baseline, ours), (ours, baseline)):
                messages = self.messages(category, inst.turns[0], a, b)
                await generator.generate(address, messages, config, tags=JUDGE_TAGS)

    def calls(self, instance: Instance) -> int:
        return 2  # two games, positions swapped

    def reads(self, path: Path) -> bool:
        """A judgment file of this version: two games a line, v0.1's category (or v0.1's
        `question_id` layout) for v0.1, another category for v2.0."""
        if path.suffix != ".jsonl" or not path.is_file():
            return False
        try:
            first = next(iter(jsonl_records(path)), None)
        except RunFileError:
            return False
        if first is None or "games" not in first[1]:
            return False
        category = str(first[1].get("category") or files.V01)
        return bool((category == files.V01) == (self.bench == files.V01))

    def rescore(self, path: Path) -> dict[str, Any]:
        return self.metrics_of(read_judgments(path, self.config.regex_patterns, self.spec.verdict))

    def metrics_of(
        self, judgments: Sequence[Judgment], *, expected: int | None = None
    ) -> dict[str, Any]:
        """The score with its interval (per category for v2.0), the games that could not be
        read, the failures, and the coverage: a prompt is judged when both its games' calls
        returned; an incomplete set's score is its judged part's, under `partial`."""
        games = [g for j in judgments for g in j.games]
        failures = [g.failure for g in games]
        judged = sum(
            all(g.failure is None or g.failure.kind is FailureKind.PARSE for g in j.games)
            for j in judgments
        )
        cover = coverage(len(judgments) if expected is None else expected, judged)
        out: dict[str, Any] = {
            "baseline": sorted({j.baseline for j in judgments}),
            "games": len(games),
            "unparseable": sum(
                g.failure is not None and g.failure.kind is FailureKind.PARSE for g in games
            ),
            "failures": count_failures(failures),
            **judge_error(failures),
            **cover,
        }
        by_category: dict[str, dict[str, Any]] = {}
        for category in sorted({j.category for j in judgments}):
            chosen = [j for j in judgments if j.category == category]
            score = self.score(chosen)
            if score is not None:
                by_category[category] = score.to_json()
        if not by_category:
            return out
        lead = by_category.get("hard_prompt") or next(iter(by_category.values()))
        numbers = {**lead, "categories": by_category} if len(by_category) > 1 else lead
        return {**out, **numbers} if cover["complete"] else {**out, "partial": numbers}

    def score(self, judgments: Sequence[Judgment]) -> scores.Score | None:
        """The version's score of these judgments (v0.1 Bradley-Terry, v2.0 mean battle score),
        or None when no game was read; public for the calibration of published games."""
        labels = [j.labels for j in judgments]
        if self.spec.metric == "bradley_terry":
            winners = scores.v01_battles(labels)
            return scores.bradley_terry(winners) if winners else None
        kept = [(j, s) for j in judgments if (s := scores.v20_scores([j.labels])) is not None]
        if not kept:
            return None
        return scores.mean_battle_score([x for _, s in kept for x in s])

    def _judgments(
        self, run: RunDir, metrics: RunMetrics, finished: Mapping[str, InstanceResult]
    ) -> list[Judgment]:
        path = self.path(run, metrics.judge)
        judgments = read_judgments(path)  # its labels as stored: no benchmark file needed
        check_rows(path, len(judgments), len(finished), "judgments")
        return judgments

    def instance_scores(
        self, run: RunDir, metrics: RunMetrics, finished: Mapping[str, InstanceResult]
    ) -> dict[str, float]:
        """Per prompt, ours' mean battle score (0-100, a strong verdict three times) over the
        games that were read."""
        return {
            j.uid: s
            for j in self._judgments(run, metrics, finished)
            if (s := _mean_score(j.labels)) is not None
        }

    def verdicts(
        self, run: RunDir, metrics: RunMetrics, finished: Mapping[str, InstanceResult]
    ) -> dict[str, Verdict]:
        """Each prompt's two games with their verdicts and prompts, and the baseline's answer."""
        out = {}
        for j in self._judgments(run, metrics, finished):
            readings = []
            for n, (game, first) in enumerate(
                zip(j.games, ("the baseline", "ours"), strict=True), 1
            ):
                facts = {
                    "verdict": game.score or "-",
                    "shown as A": f"{first} ({j.baseline if n == 1 else j.model})",
                    "judge": j.judge,
                }
                if game.failure is not None:
                    facts["failure"] = f"{game.failure.kind.value}: {game.failure.reason}"
                user = next((m["content"] for m in game.prompt if m.get("role") == "user"), None)
                readings.append(Reading(f"game {n}", facts, game.judgment, user))
            found = _ANSWER_A.search(readings[0].prompt or "")
            out[j.uid] = Verdict(
                score=_mean_score(j.labels),
                outcome=" / ".join(label or "-" for label in j.labels),
                readings=readings,
                tags=[j.category],
                reference=(j.baseline, found.group(1)) if found else None,
            )
        return out

    def headline(self, metrics: Mapping[str, Any]) -> float:
        if not is_complete(metrics) or "score" not in metrics:
            return float("nan")
        return float(metrics["score"])

    def scripted_answer(
        self,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        rng: random.Random,
        tokens: int,
    ) -> str | Completion | None:
        """A verdict in the judge's own label format for a request built from its prompts."""
        if len(messages) < 2 or messages[0]["role"] != "system":
            return None
        prompts = {s["system_prompt"] for s in self.config.settings.values()}
        head = self.config.prompt_template.split("{", 1)[0]
        if messages[0]["content"] not in prompts or not messages[1]["content"].startswith(head):
            return None
        return f"Both answers address the prompt.\n\nMy final verdict is: [[{rng.choice(LABELS)}]]"


KIND = Games
