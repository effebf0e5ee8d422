"""An agent of a mixture (`moa.mixture`): its model, sample, kind and settings, and what one
of its calls sent.

Every field of `Agent` but `model`, `sample`, `context_length` and `strategy_timeout_s` is a
setting that changes what is sent; `settings()` lists those that differ from the defaults, which
the run identity records.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from moa.events import TraceEvent
from moa.prompts import AGGREGATE_AND_SYNTHESIZE, CRITIQUE, RANK_AND_SELECT, RANK_TOP_K
from moa.trace import CallTrace
from moa.types import GenerateConfig
from moa.voting import VERIFY


@dataclass(frozen=True)
class Kind:
    """One kind of agent: what the ledger calls it, where in a mixture it may stand, and what
    heads the answers injected into its prompt. How each kind runs is `moa.mixture.Mixture`'s
    table of runners, which lists these same kinds."""

    name: str
    role: str  # the ledger's `role` tag (the names calls had before kinds existed)
    reads_answers: bool = False  # needs a previous layer's answers: never in layer 1
    answers: bool = True  # its output is an answer: it may be the last layer
    template: str = AGGREGATE_AND_SYNTHESIZE  # what heads the injected answers, by default
    template_top_k: str | None = None  # the same, for an agent that passes on top_k > 1
    batched: bool = False  # draws of it differing only by sample go as one batch


# Every kind of agent, in the order the docs list them.
AGENT_KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("propose", "proposer", batched=True),
        Kind("aggregate", "aggregator", batched=True),
        Kind("rank", "ranker", reads_answers=True, template=RANK_AND_SELECT,
             template_top_k=RANK_TOP_K),
        Kind("critique", "critic", reads_answers=True, answers=False, template=CRITIQUE),
        Kind("vote", "voter", reads_answers=True),  # makes no call (`moa.voting`)
        Kind("verify", "verifier", reads_answers=True, template=VERIFY),
        Kind("strategy", "strategy"),
    )
}  # fmt: skip
KINDS = tuple(AGENT_KINDS)
ROLES = {name: kind.role for name, kind in AGENT_KINDS.items()}
# A run repeated (`repeats=k`) draws run r's samples from (r - 1) * REPEAT_STRIDE on, so that
# run 2 is no cache hit of run 1, and run 1 is the run made before repeats existed.
REPEAT_STRIDE = 1000
RANKER_MAX_TOKENS = 16  # a ranker writes a number or a few: the paper's baseline needs no more
# How long a strategy may take on one turn, its calls included (waits for slots too): far more
# than a healthy run's calls need, and an end to one that hangs.
STRATEGY_TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class Agent:
    """One agent of a layer. Every field but `model`, `sample`, `context_length` and
    `strategy_timeout_s` is a setting that changes what is sent; `settings()` lists those that
    differ from the defaults."""

    model: str  # endpoint/model address
    sample: int = 0  # tells apart draws of one request (and, shifted, the repeats of a run)
    context_length: int | None = None  # tokens, from the catalogue; None: never fitted
    kind: str = "propose"  # one of KINDS
    decoding: tuple[tuple[str, Any], ...] = ()  # `GenerateConfig` fields over the instance's
    system: str | None = None  # the agent's own system prompt, before the benchmark's
    template: str | None = None  # what heads the injected answers; None: the kind's default
    top_k: int = 1  # `rank`: how many answers it passes on
    strategy: str | None = None  # `strategy`: the callable's dotted path
    source_sha256: str | None = None  # `strategy`: its module's, `moa.strategy.source_fingerprint`
    options: tuple[tuple[str, Any], ...] = ()  # `strategy`: its own settings
    strategy_timeout_s: float = STRATEGY_TIMEOUT_S  # `strategy`: its bound on one turn

    @property
    def label(self) -> str:
        return f"{self.model}#{self.sample}"

    @property
    def role(self) -> str:
        return AGENT_KINDS[self.kind].role

    def preamble(self) -> str:
        """The template that heads the injected answers (`{k}` replaced for a ranker)."""
        if self.template is not None:
            return self.template.replace("{k}", str(self.top_k))
        kind = AGENT_KINDS[self.kind]
        if self.top_k != 1 and kind.template_top_k is not None:
            return kind.template_top_k.replace("{k}", str(self.top_k))
        return kind.template

    def configured(self, config: GenerateConfig) -> GenerateConfig:
        """The instance's decoding with the agent's own over it (a ranker's answer is short)."""
        if self.kind == "rank" and "max_tokens" not in dict(self.decoding):
            config = config.merged(max_tokens=RANKER_MAX_TOKENS)
        return config.merged(**dict(self.decoding)) if self.decoding else config

    def settings(self, default_kind: str) -> dict[str, Any]:
        """What the run identity records beyond model and sample: the non-default settings."""
        out: dict[str, Any] = {}
        if self.kind != default_kind:
            out["kind"] = self.kind
        for name in ("system", "template", "strategy", "source_sha256"):
            if (value := getattr(self, name)) is not None:
                out[name] = value
        if self.top_k != 1:
            out["top_k"] = self.top_k
        if self.decoding:
            out["decoding"] = dict(self.decoding)
        if self.options:
            out["options"] = dict(self.options)
        return out

    def shifted(self, by: int) -> Agent:
        return dataclasses.replace(self, sample=self.sample + by)


Layer = tuple[Agent, ...]


@dataclass
class Sent:
    """One call, with the references it saw and the context events it caused."""

    call: CallTrace
    references: tuple[str, ...] = ()
    events: list[TraceEvent] = field(default_factory=list)
    refusal: str | None = None  # the context policy failed the turn
