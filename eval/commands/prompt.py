"""`prompt="..."`: one prompt through the chosen variant, every layer shown as it runs."""

from __future__ import annotations

from collections.abc import Sequence

from rich.markup import escape
from rich.panel import Panel

from eval.commands.output import console
from eval.run_labels import Namer
from eval.sendable import check_text
from eval.settings import Settings, build_client
from moa.agents import Agent
from moa.mixture import Mixture
from moa.trace import CallTrace
from moa.types import GenerateConfig


class _ShowLayers:
    """Prints each layer of a one-prompt run as it starts and as it ends; the last layer's
    answer is the output. Models are named as `namer` names them (a stand-in as such)."""

    def __init__(self, layers: int, final_is_output: bool, namer: Namer) -> None:
        self.layers = layers  # with the final agent's
        self.final_is_output = final_is_output  # not for the ranker, whose answer is a pick
        self.namer = namer

    def started(self, depth: int, agents: Sequence[Agent]) -> None:
        names = ", ".join(f"{self.namer.shown(a.model)}#{a.sample}" for a in agents)
        console.print(f"[dim]layer {depth} started: {len(agents)} call(s) ({escape(names)})")

    def finished(self, depth: int, calls: Sequence[CallTrace]) -> None:
        for call in calls:
            body = escape(call.text) if call.text is not None else f"[red]error: {call.error}"
            model = escape(self.namer.shown(call.model))
            # the final layer's last call is the output (a strategy's earlier calls are not)
            if depth == self.layers and self.final_is_output and call is calls[-1]:
                title, border = f"output: {model}", "red" if call.error else "green"
            else:
                title, border = f"layer {depth}: {model} #{call.sample}", "blue"
            console.print(Panel(body, title=title, border_style="red" if call.error else border))


def namer_of(settings: Settings) -> Namer:
    """How this config's models are named for a person (`eval.run_labels.Namer`)."""
    return Namer(settings.catalogue, settings.endpoints)


async def answer_prompt(settings: Settings) -> int:
    """One prompt through the chosen variant, showing every layer as it runs; exits non-zero,
    naming each failed call, when no answer came out."""
    prompt = str(settings.prompt)
    check_text(prompt, "prompt")
    spec = settings.spec
    client = build_client(settings, ledger_path=None)
    gen = settings.benchmark.generation
    config = GenerateConfig(
        temperature=float(gen["temperature"]), max_tokens=int(gen["max_tokens"])
    )
    try:
        client.preflight(spec.models())
        watcher = _ShowLayers(len(spec.layers), spec.mode != "rank", namer_of(settings))
        turn = await Mixture(spec, client, watcher).run_turn(
            [{"role": "user", "content": prompt}], config
        )
    finally:
        await client.aclose()
    if spec.mode == "rank" and turn.output is not None and turn.final is not None:
        title = f"output: the proposal {escape(watcher.namer.shown(turn.final.model))} picked"
        console.print(Panel(escape(turn.output), title=title, border_style="green"))
    for event in turn.events:
        console.print(f"[yellow]note: {escape(str(event))}")
    t = client.ledger.totals
    console.print(
        escape(f"{t.calls} calls ({t.cached} cached), {t.input_tokens + t.output_tokens:,} tokens, "
               f"{t.money()}")
    )  # fmt: skip
    if turn.output is not None:
        return 0
    failed = [c for c in turn.calls() if c.error]
    console.print(f"[red]no answer: {escape(turn.error or 'the mixture failed')}")
    for call in failed:
        console.print(f"[red]  {escape(call.label)} failed after {call.attempts} attempt(s): "
                      f"{escape(call.error or '')}")  # fmt: skip
    return 1
