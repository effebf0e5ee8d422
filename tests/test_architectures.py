"""Mixtures as data: layers of different models and kinds, custom prompts, a user's strategy,
`self_moa_seq` and `rank_fuse`, repeated runs, and the plan predicting each of them exactly."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from eval.cli import dispatch
from eval.mixture_config import build_mixture
from eval.plan import plan_points
from eval.rundir import LEDGER, TRACES, RunDir
from eval.settings import build_client, resolve, to_dict
from moa.agents import REPEAT_STRIDE, Agent
from moa.errors import ConfigError
from moa.events import ContextOverflow, CritiqueFailed, DroppedProposals
from moa.mixture import Mixture, MixtureSpec
from moa.prompts import CRITIQUE, RANK_TOP_K
from moa.strategy import StrategyContext
from moa.types import CallOutcome, CallRecord, ChatMessage, Completion, GenerateConfig
from tests.kit.cli import MOA_BENCH, ROOT, SHARED_DATA, read_jsonl, run
from tests.kit.cli import scripted_config as config

EXAMPLES = ROOT / "examples"
CONFIG = GenerateConfig(temperature=0.7, max_tokens=2048)


class Seen:
    """A generator in front of the real client that keeps every request."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.requests: list[tuple[str, list[ChatMessage], GenerateConfig, int, dict[str, str]]] = []

    async def generate(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        *,
        sample: int = 0,
        tags: Mapping[str, str] | None = None,
    ) -> CallOutcome:
        self.requests.append((model, list(messages), config, sample, dict(tags or {})))
        outcome: CallOutcome = await self.inner.generate(
            model, messages, config, sample=sample, tags=tags
        )
        return outcome


def test_layers_of_different_models_and_kinds(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    catalogue = resolve(cfg).catalogue
    spec = build_mixture(
        {
            "name": "mixed",
            "layers": [
                [
                    {"models": ["qwen1.5-72b", "dbrx"], "temperature": 0.9},
                    {"model": "llama-3-70b", "samples": 2, "system": "Be brief."},
                ],
                [{"model": "qwen1.5-110b", "kind": "rank", "top_k": 2}],
                [{"model": "mixtral-8x22b", "kind": "critique"}],
                [{"model": "gpt-4o"}],
            ],
        },
        catalogue,
    )
    assert spec.calls_per_turn == 4 + 1 + 2 + 1

    async def go() -> Any:
        client = build_client(resolve(cfg), None)
        seen = Seen(client)
        try:
            turn = await Mixture(spec, seen).run_turn([{"role": "user", "content": "Hi?"}], CONFIG)
        finally:
            await client.aclose()
        return turn, seen.requests

    turn, requests = asyncio.run(go())
    assert [len(layer) for layer in turn.layers] == [4, 1, 2]
    assert turn.final.model == "scripted/gpt-4o-2024-05-13" and turn.output
    first = [r for r in requests if r[4]["layer"] == "1"]
    assert [r[2].temperature for r in first] == [0.9, 0.9, 0.7, 0.7]
    assert [r[3] for r in first] == [0, 0, 0, 1]  # two draws of llama, told apart
    assert first[2][1][0] == {"role": "system", "content": "Be brief."}
    (rank,) = [r for r in requests if r[4]["role"] == "ranker"]
    assert rank[1][0]["content"].startswith(RANK_TOP_K.replace("{k}", "2").split("\n")[0])
    assert rank[2].max_tokens == 16
    critiques = [r for r in requests if r[4]["role"] == "critic"]
    assert len(critiques) == 2
    for critique in critiques:
        system = critique[1][0]["content"]
        assert system.startswith(CRITIQUE) and "\n1. " in system and "\n2. " not in system
    final = requests[-1]
    assert final[4] == {"role": "aggregator", "layer": "0"}
    assert final[1][0]["content"].count("Critique of this response:") == 2


def test_a_bad_layer_is_one_clear_line(tmp_path: Path) -> None:
    catalogue = resolve(config(tmp_path)).catalogue
    cases = {
        "the last layer is one agent": [[{"model": "dbrx"}], [{"model": "dbrx", "samples": 2}]],
        "needs a previous layer's answers": [[{"model": "dbrx", "kind": "rank"}]],
        "did you mean temperature": [[{"model": "dbrx", "temprature": 1}]],
        "cannot import nowhere": [
            [{"model": "dbrx"}],
            [{"model": "dbrx", "strategy": "nowhere.f"}],
        ],
    }
    for said, layers in cases.items():
        with pytest.raises(ConfigError, match=said):
            build_mixture({"name": "bad", "layers": layers}, catalogue)


def test_a_prompt_from_a_file_is_recorded_in_the_identity(tmp_path: Path) -> None:
    prompt = tmp_path / "fuse.txt"
    prompt.write_text("Fuse these answers into one.\n\nAnswers:")
    overrides = (
        "benchmark=alpaca_eval",
        "benchmark.limit=2",
        "task=generate",
        "moa=moa_lite",
        f"+moa.layers.1.0.template_file={prompt}",
    )
    cfg = config(tmp_path, *overrides)
    assert asyncio.run(dispatch(cfg)) == 0
    identity = RunDir(Path(str(cfg.run_dir))).identity()
    assert identity is not None and identity.aggregator.settings() == {
        "template": prompt.read_text()
    }
    trace = read_jsonl(Path(str(cfg.run_dir)) / TRACES)[0]
    assert trace["trace"]["turns"][0]["final"]["text"]
    # The same directory with another prompt is another run: refused, saying what differs.
    prompt.write_text("Something else.")
    with pytest.raises(ConfigError, match="aggregator"):
        asyncio.run(dispatch(config(tmp_path, *overrides)))


def _calls(run_dir: Path) -> list[dict[str, Any]]:
    return read_jsonl(run_dir / LEDGER)


def _plan_then_run(root: Path, *overrides: str) -> tuple[int, list[dict[str, Any]], Path]:
    """The plan's count of a variant's calls on an empty cache, then the real run's ledger."""
    cfg = config(root, "benchmark=mt_bench", "benchmark.limit=3", "task=generate", *overrides)
    ((_, planned),) = asyncio.run(plan_points(resolve(cfg), [resolve(cfg)]))
    assert asyncio.run(dispatch(cfg)) == 0
    return planned.total_calls, _calls(Path(str(cfg.run_dir))), Path(str(cfg.run_dir))


def test_self_moa_seq_slides_a_window_over_its_samples(tmp_path: Path) -> None:
    planned, calls, run_dir = _plan_then_run(tmp_path, "moa=self_moa_seq")
    # 12 samples, windows of 4: 4 + 3 + 3 + 3 answers in 4 calls, per turn; 3 questions x 2 turns
    assert planned == len(calls) == 6 * (12 + 4)
    turn = read_jsonl(run_dir / TRACES)[0]["trace"]["turns"][0]
    assert [len(layer) for layer in turn["layers"]] == [12, 3]
    assert turn["final"]["model"].endswith("Qwen1.5-110B-Chat") and turn["output"]


def test_rank_fuse_ranks_then_fuses(tmp_path: Path) -> None:
    planned, calls, _ = _plan_then_run(tmp_path, "moa=rank_fuse")
    assert planned == len(calls) == 6 * (6 + 1 + 1)
    roles = [
        c["tags"]["role"] for c in calls if c["tags"]["instance"] == calls[0]["tags"]["instance"]
    ]
    assert roles.count("ranker") == 2 and roles.count("aggregator") == 2


def test_a_strategy_from_outside_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    strategy = "moa.layers.1.0.strategy=mylab.fusers.vote_then_fuse"
    planned, calls, run_dir = _plan_then_run(tmp_path, "moa=moa_lite", strategy)
    assert planned == len(calls) == 6 * (6 + 3 + 1)  # six proposals, three votes, one fusion
    assert all(not c["error"] for c in calls)
    turn = read_jsonl(run_dir / TRACES)[0]["trace"]["turns"][0]
    assert [len(layer) for layer in turn["layers"]] == [6, 3]
    assert [c["sample"] for c in turn["layers"][1]] == [0, 1, 2]
    identity = RunDir(run_dir).identity()
    assert identity is not None and identity.mode == "strategy"
    settings = identity.aggregator.settings()
    assert identity.aggregator.strategy == "mylab.fusers.vote_then_fuse"
    assert set(settings) == {"strategy", "source_sha256"}  # its module's source, fingerprinted


def test_repeats_are_runs_of_their_own_summarized_as_mean_and_std(tmp_path: Path) -> None:
    overrides = ("benchmark=mt_bench", "benchmark.limit=4", "moa=moa_lite", "repeats=3")
    cfg = config(tmp_path, *overrides)
    ((_, planned),) = asyncio.run(plan_points(resolve(cfg), [resolve(cfg)]))
    assert [v.name for v in planned.variants] == ["moa_lite", "moa_lite~run2", "moa_lite~run3"]
    assert asyncio.run(dispatch(cfg)) == 0
    base = Path(str(cfg.results_dir)) / "mt_bench"
    dirs = {d.name: d for d in base.iterdir()}
    assert set(dirs) == {
        "moa_lite@scripted~first4",
        *(f"moa_lite@scripted~first4~run{r}" for r in (2, 3)),
    }
    samples = {
        name: {c["sample"] for c in _calls(d) if c["tags"]["layer"] == "1"}
        for name, d in dirs.items()
    }
    assert samples["moa_lite@scripted~first4"] == {0}
    assert samples["moa_lite@scripted~first4~run3"] == {2 * REPEAT_STRIDE}
    second = _calls(dirs["moa_lite@scripted~first4~run2"])
    assert not any(c["cached"] for c in second)  # run 2 is no cache hit of run 1
    assert planned.variants[1].calls == len(second)
    for d in dirs.values():
        assert (d / "metrics.json").is_file()  # each one judged
    out = tmp_path / "report"
    cfg = config(tmp_path, "task=report", f"report.out_dir={out}")
    assert asyncio.run(dispatch(cfg)) == 0
    table = (out / "table2b_mt_bench.md").read_text()
    row = next(line for line in table.splitlines() if "MoA-Lite" in line)
    assert "±" in row and "3" in row


def test_critics_between_layers_are_planned_as_run(tmp_path: Path) -> None:
    layers = (
        "moa.layers=[[{models:[dbrx,qwen1.5-72b]},{model:llama-3-70b,samples:2}],"
        "[{model:mixtral-8x22b,kind:critique}],[{model:qwen1.5-110b}]]"
    )
    planned, calls, run_dir = _plan_then_run(tmp_path, "moa=moa", "moa.name=critics", layers)
    assert planned == len(calls) == 6 * (4 + 4 + 1)
    identity = RunDir(run_dir).identity()
    assert identity is not None
    (critic,) = identity.layers[1]
    assert critic.model.endswith("Mixtral-8x22B-Instruct-v0.1")
    assert (critic.sample, critic.kind, critic.role, critic.settings()) == (
        0,
        "critique",
        "critic",
        {},
    )


class Canned:
    """Answers every call with `text` (by default, naming the model and sample), but those of
    `failing` (a ledger role), which fail as a server error would."""

    def __init__(self, text: str | None = None, failing: str | None = None) -> None:
        self.text, self.failing = text, failing

    async def generate(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        *,
        sample: int = 0,
        tags: Mapping[str, str] | None = None,
    ) -> CallOutcome:
        record = CallRecord(key=f"{model}#{sample}:{messages}", model=model, sample=sample)
        if self.failing is not None and (tags or {}).get("role") == self.failing:
            record.error = "transient 500: boom"
            return CallOutcome(None, record)
        text = self.text or f"answer of {model}#{sample}"
        return CallOutcome(Completion(text, 10, len(text) // 4), record)


def test_draws_of_one_request_are_fitted_and_reported_each_under_its_own_name() -> None:
    layer = tuple(Agent("x/a", s, context_length=1500) for s in range(3))
    spec = MixtureSpec.paper("t", (layer, layer), Agent("x/b", context_length=1500))
    turn = asyncio.run(
        Mixture(spec, Canned("word " * 400)).run_turn(
            [{"role": "user", "content": "Hi?"}], CONFIG.merged(max_tokens=100)
        )
    )
    named = [e for e in turn.events if isinstance(e, ContextOverflow) and "(layer 2)" in e.at]
    assert len(named) == 3 and all(e.at.endswith(f"x/a#{s} (layer 2)") for s, e in enumerate(named))


def test_a_sweep_of_rankers_within_the_mixture_is_planned_as_run(tmp_path: Path) -> None:
    """Two `rank_fuse` variants with different rankers share the proposals, never the fusion:
    the plan must not take the picks (which only the models know) for the same."""
    base = ("benchmark=mt_bench", "benchmark.limit=3", "task=generate", "moa=rank_fuse")
    points = [
        config(tmp_path, *base, "moa.name=rank_110b"),
        config(tmp_path, *base, "moa.name=rank_72b", "moa.ranker=qwen1.5-72b"),
    ]
    settings = [resolve(point) for point in points]
    ((_, planned),) = asyncio.run(plan_points(settings[0], settings))
    sent = 0
    for point in points:
        assert asyncio.run(dispatch(point)) == 0
        sent += sum(not c["cached"] for c in _calls(Path(str(point.run_dir))))
    # 3 questions x 2 turns of 8 calls; the second variant shares its first turns' proposals,
    # and no more: its second turns follow its own first answers
    assert planned.unique_calls == sent == 6 * 8 + 3 * 2 + 3 * 8


async def nothing(ctx: StrategyContext) -> list[str]:
    """A strategy that passes nothing on, and makes no call."""
    return []


def test_failures_of_other_kinds_are_errors_not_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    catalogue = resolve(config(tmp_path)).catalogue
    user: list[ChatMessage] = [{"role": "user", "content": "Hi?"}]

    def turn(layers: list[Any], role: str) -> Any:
        spec = build_mixture({"name": "t", "layers": layers}, catalogue)
        return asyncio.run(Mixture(spec, Canned(failing=role)).run_turn(user, CONFIG))

    # a final strategy whose last call failed: no output, the call's error
    fused = turn(
        [
            [{"models": ["dbrx", "qwen1.5-72b"]}],
            [{"model": "dbrx", "strategy": "mylab.fusers.vote_then_fuse"}],
        ],
        "strategy",
    )
    assert fused.output is None and "boom" in (fused.error or "")
    # critiques that failed: the answers go on alone, and the trace says so
    critiqued = turn(
        [
            [{"models": ["dbrx", "qwen1.5-72b"]}],
            [{"model": "dbrx", "kind": "critique"}],
            [{"model": "dbrx"}],
        ],
        "critic",
    )
    assert critiqued.output and not critiqued.error
    assert sum(isinstance(e, CritiqueFailed) for e in critiqued.events) == 2
    assert not any(isinstance(e, DroppedProposals) for e in critiqued.events)
    # a layer that passes nothing on fails the turn, rather than running the next as layer 1
    silent = turn(
        [
            [{"model": "dbrx"}],
            [{"model": "dbrx", "strategy": f"{__name__}.nothing"}],
            [{"model": "dbrx"}],
        ],
        "none",
    )
    assert silent.output is None and "no answer was passed on" in (silent.error or "")


def test_a_repeat_of_a_repeat_is_counted_from_run_one(tmp_path: Path) -> None:
    spec = build_mixture(
        {"name": "t", "layers": 2, "proposers": ["dbrx"], "samples": 2, "aggregator": "dbrx"},
        resolve(config(tmp_path)).catalogue,
    )
    assert spec.repeated(2).repeated(3) == spec.repeated(3)
    assert [a.sample for a in spec.repeated(3).agents()] == [2000, 2001, 2000]
    assert spec.repeated(3).repeated(1) == spec


def test_a_strategys_options_are_checked_before_any_call(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="window"):
        config_ = config(tmp_path, "moa=self_moa_seq", "moa.window=1")
        build_mixture(to_dict(config_.moa), resolve(config_).catalogue)


def test_each_repeat_logs_to_its_own_directory(tmp_path: Path) -> None:
    args = [
        MOA_BENCH, "provider_override=scripted", f"data_dir={SHARED_DATA}",
        f"results_dir={tmp_path / 'runs'}", f"cache.path={tmp_path / 'c.sqlite'}",
        "benchmark=mt_bench", "benchmark.limit=1", "moa=moa_lite", "repeats=2", "judge=none",
    ]  # fmt: skip
    done = run(args)
    assert done.returncode == 0, done.stderr
    base = tmp_path / "runs" / "mt_bench"
    first, second = base / "moa_lite@scripted~first1", base / "moa_lite@scripted~first1~run2"
    assert "run 1 of 2" in (first / "cli.log").read_text()
    log = (second / "cli.log").read_text()
    assert "run 2 of 2" in log and "run 1 of 2" not in log
