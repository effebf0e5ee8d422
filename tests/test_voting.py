"""The `vote` and `verify` agent kinds: the majority with its tie rule, the verifier's pick, and
both through a real mixture (calls made, answers passed on, events recorded, counted)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from eval.judges.exact_checks import extractor
from moa.agents import Agent
from moa.events import Verified, Voted, from_json
from moa.mixture import Mixture, MixtureSpec
from moa.types import CallOutcome, CallRecord, ChatMessage, Completion, GenerateConfig
from moa.voting import best_verified, majority, verdict_of

GSM8K = extractor("gsm8k", {})


def test_the_answer_most_given_wins_read_by_the_benchmarks_extractor() -> None:
    answers = ["so #### 4", "I get 5", "it is 5.", "#### 4", "#### 4"]
    assert majority(answers, GSM8K) == Voted(1, 3, 5, 5, "majority")


def test_a_tie_goes_to_the_answer_given_earliest_and_the_rule_says_so() -> None:
    voted = majority(["no number here", "#### 7", "#### 3", "#### 3", "#### 7"], GSM8K)
    assert (voted.chosen, voted.votes, voted.voters) == (2, 2, 4)
    assert voted.rule == "tie of 2: the earliest given"


def test_nothing_readable_passes_on_the_first_and_whole_texts_vote_without_an_extractor() -> None:
    assert majority(["a", "b"], GSM8K).rule == "none readable: the first answer"
    assert majority(["x", " y ", "y"], None).chosen == 2
    assert majority(["$\\boxed{\\frac12}$", "\\boxed{2}", "\\boxed{\\frac12}"],
                    extractor("math", {})).chosen == 1  # fmt: skip


def test_the_verifiers_last_verdict_line_counts() -> None:
    assert verdict_of("steps...\nVerdict: correct")
    assert not verdict_of("Verdict: correct\nwait, no.\nVerdict: incorrect")
    assert not verdict_of("looks fine") and not verdict_of(None)
    assert best_verified([False, True, True]) == Verified(2, 2, 3, "the first verified")
    assert best_verified([False, False]).rule == "none verified: the first candidate"


def test_the_events_are_stored_and_read_back() -> None:
    for event in (Voted(2, 3, 4, 5, "majority"), Verified(1, 0, 3, "none verified: x")):
        stored = dataclasses.asdict(event)
        assert from_json(stored) == event and str(event)


class Scripted:
    """Sample i of the proposer answers `PROPOSALS[i]`; the verifier verifies a candidate that
    ends in `#### 12`."""

    PROPOSALS = ("a #### 11", "b #### 12", "c #### 11", "d #### 12", "e #### 11")

    def __init__(self) -> None:
        self.calls: list[Mapping[str, str]] = []

    async def generate(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        *,
        sample: int = 0,
        tags: Mapping[str, str] | None = None,
    ) -> CallOutcome:
        self.calls.append(dict(tags or {}))
        if (tags or {}).get("role") == "verifier":
            right = "#### 12" in messages[0]["content"]
            text = f"checked.\nVerdict: {'correct' if right else 'incorrect'}"
        else:
            text = self.PROPOSALS[sample]
        return CallOutcome(Completion(text, 5, 5), CallRecord(f"k{len(self.calls)}", model, sample))


def spec(kind: str) -> MixtureSpec:
    proposers = tuple(Agent("e/m", sample=i) for i in range(5))
    return MixtureSpec("t", (proposers, (Agent("e/m", kind=kind),)))


async def test_a_vote_makes_no_call_and_passes_on_the_majority() -> None:
    generator = Scripted()
    turn = await Mixture(spec("vote"), generator, extract=GSM8K).run_turn(
        [{"role": "user", "content": "q"}], GenerateConfig()
    )
    assert turn.output == "a #### 11" and len(generator.calls) == 5 and turn.final is None
    assert [e for e in turn.events if isinstance(e, Voted)] == [Voted(1, 3, 5, 5, "majority")]
    assert spec("vote").calls_per_turn == 5


async def test_a_verifier_checks_each_candidate_and_passes_on_the_first_verified() -> None:
    generator = Scripted()
    turn = await Mixture(spec("verify"), generator).run_turn(
        [{"role": "user", "content": "q"}], GenerateConfig()
    )
    assert turn.output == "b #### 12"
    assert sum(c.get("role") == "verifier" for c in generator.calls) == 5
    assert [e for e in turn.events if isinstance(e, Verified)] == [
        Verified(2, 2, 5, "the first verified")
    ]
    assert spec("verify").calls_per_turn == 10
