"""User-defined agents: a Python callable named by dotted path, and the built-in ones.

A strategy is `async def name(ctx: StrategyContext) -> list[str] | str`: given the conversation,
the previous layer's answers and `ctx.generate`, it returns what it passes on (the final agent:
one answer). Every call it makes goes through the mixture's generator (`ModelClient`: cached,
budgeted, ledgered) and into the trace, with the context policy applied as for any agent. The
plan runs a strategy on stand-in answers, so its count is exact unless what the strategy calls
depends on the answers' text; such a strategy sets `plan_exact = False` and the plan says so. A
strategy may also have `validate(options)`, called when the config is read (before any call),
raising `ConfigError` for options it cannot use.

A strategy that raises, takes longer than its agent's `strategy_timeout_s`, or returns anything
but a str or a list of str fails that turn of that instance (`moa.mixture`), as a failed call
does: recorded in the trace, counted, and tried again by the next run. What the harness itself
raises through `ctx.generate` (a budget stop, a cache that cannot be written) still stops the
run, whatever the strategy does with it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moa.agents import Agent, Sent
from moa.errors import ConfigError
from moa.failures import describe_exception
from moa.types import ChatMessage, GenerateConfig

Strategy = Callable[["StrategyContext"], Awaitable[Sequence[str] | str]]
# How a strategy's call is sent: agents, conversation, references, decoding, ledger tags.
Send = Callable[
    [Sequence[Agent], Sequence[ChatMessage], Sequence[str], GenerateConfig, Mapping[str, str]],
    Awaitable[list[Sent]],
]


def load_strategy(path: str) -> Strategy:
    """The callable at `package.module.name`, or one clear line saying why not."""
    module_name, _, name = path.rpartition(".")
    if not module_name:
        raise ConfigError(f"strategy {path!r}: give a dotted path, module.name")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"strategy {path!r}: cannot import {module_name} ({exc}); is its directory on "
            "PYTHONPATH?"
        ) from None
    except (Exception, SystemExit) as exc:  # the module's own code failed: a user's error
        raise ConfigError(
            f"strategy {path!r}: importing {module_name} raised {describe_exception(exc)}"
        ) from None
    found = getattr(module, name, None)
    if not callable(found):
        raise ConfigError(f"strategy {path!r}: {module_name} has no callable {name!r}")
    return found  # type: ignore[no-any-return]


def source_fingerprint(path: str, strategy: Strategy) -> str | None:
    """sha256 of the source of the module `path` names (and of the one defining the callable,
    if another), for the run identity: an edited strategy is another run, as an edited prompt
    is. Modules they import are not covered. None for moa's own strategies, which change with
    the harness, as the built-in kinds do."""
    names = {path.rpartition(".")[0], str(getattr(strategy, "__module__", "") or "")}
    own = sorted(n for n in names if n and n != "moa" and not n.startswith("moa."))
    if not own:
        return None
    digest = hashlib.sha256()
    for name in own:
        file = getattr(sys.modules.get(name), "__file__", None)
        try:
            source = Path(file).read_bytes() if file else None
        except OSError as exc:
            source, file = None, f"{file}: {exc.strerror or exc}"
        if source is None:
            raise ConfigError(
                f"strategy {path!r}: cannot read the source of {name} to fingerprint it "
                f"({file or 'it has no file'})"
            )
        digest.update(f"{name}\0{len(source)}\0".encode() + source)
    return digest.hexdigest()


def plan_exact(strategy: Strategy) -> bool:
    return bool(getattr(strategy, "plan_exact", True))


@dataclass
class StrategyContext:
    """What a strategy sees. `generate` makes one call as this agent (or another model), with
    `references` injected under `template` (the paper's aggregate prompt by default); `sample`
    counts from the agent's own, so repeated draws of one request are told apart. A call to
    another `model` is not fitted to a context window (the agent knows only its own)."""

    messages: Sequence[ChatMessage]
    references: Sequence[str]
    agent: Agent
    config: GenerateConfig
    options: Mapping[str, Any]
    _send: Send  # the mixture's (`moa.mixture.Mixture.send`)
    _tags: Mapping[str, str]
    _calls: list[Sent | None] = field(default_factory=list)  # in the order they were made
    # What the harness raised through `generate` (a budget stop...): re-raised after the strategy.
    stopped_by: Exception | None = None

    @property
    def sent(self) -> list[Sent]:
        """Every call made, in the order made (not ended): the last made is the output's."""
        return [s for s in self._calls if s is not None]

    async def generate(
        self,
        messages: Sequence[ChatMessage] | None = None,
        *,
        references: Sequence[str] = (),
        template: str | None = None,
        model: str | None = None,
        sample: int = 0,
        config: GenerateConfig | None = None,
    ) -> str | None:
        """The answer, stripped; None when the call failed (recorded in the trace)."""
        agent = dataclasses.replace(
            self.agent,
            model=model or self.agent.model,
            context_length=self.agent.context_length if model is None else None,
            sample=self.agent.sample + sample,
            template=template if template is not None else self.agent.template,
        )
        slot = len(self._calls)
        self._calls.append(None)
        try:
            (sent,) = await self._send(
                [agent], messages or self.messages, references, config or self.config, self._tags
            )
        except Exception as exc:
            self.stopped_by = self.stopped_by or exc
            raise
        self._calls[slot] = sent
        text = sent.call.text
        return None if text is None or sent.refusal else text.strip()


class SlidingWindow:
    """Self-MoA's sequential aggregation (Li et al. 2025, arXiv 2502.00674): the first
    `window` answers are synthesized into one; each later call synthesizes the current
    synthesis with the next `window - 1` answers, so the prompt stays bounded however many
    samples there are. Passes on the last synthesis; nothing, if a call failed."""

    def validate(self, options: Mapping[str, Any]) -> None:
        window = options.get("window", 3)
        if not isinstance(window, int) or isinstance(window, bool) or window < 2:
            raise ConfigError(f"strategy sliding_window: options.window={window!r}, needs >= 2")

    async def __call__(self, ctx: StrategyContext) -> list[str]:
        window = int(ctx.options.get("window", 3))
        answers = list(ctx.references)
        synthesis = await ctx.generate(references=answers[:window])
        rest = answers[window:]
        while rest and synthesis is not None:
            shown, rest = rest[: window - 1], rest[window - 1 :]
            synthesis = await ctx.generate(references=[synthesis, *shown])
        return [] if synthesis is None else [synthesis]


sliding_window = SlidingWindow()
