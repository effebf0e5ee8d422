"""Every request each shipped preset sends, for a fixed set of conversations, as data.

`tests/data/preset_requests.json` holds what the presets sent before mixtures became layers of
agents (written by `python -m tests.kit.presets --write`, at the commit that introduced the
spec); `tests/test_presets.py` checks that the presets still send exactly those requests, so
the cache keys of users' paid calls stay valid.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir

from eval.generate import identity_of
from eval.settings import CONF_DIR, resolve
from moa.cache import call_key
from moa.mixture import Mixture
from moa.types import CallOutcome, CallRecord, ChatMessage, Completion, GenerateConfig

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "preset_requests.json"
CONFIG = GenerateConfig(temperature=0.7, max_tokens=2048)

# Each shipped preset (`conf/moa/`), with the parameters its experiments sweep.
VARIANTS: tuple[tuple[str, ...], ...] = (
    ("moa",),
    ("moa_gpt4o",),
    ("moa_lite",),
    ("multi_proposer", "moa.n=3"),
    ("multi_proposer", "moa.n=6"),
    ("single_proposer", "moa.n=2"),
    ("single_proposer", "moa.n=6", "moa.proposers=[llama-3-70b]"),
    ("as_aggregator", "moa.model=dbrx"),
    ("as_proposer", "moa.model=wizardlm-2-8x22b"),
    ("llm_ranker",),
    ("llm_ranker", "moa.layers=3"),
    ("self_moa",),
    ("published_proposers",),
    ("single", "moa.aggregator=gpt-4o"),
    ("single_gpt4o",),
    ("demo",),
    ("moa", "moa.layers=4"),
    ("moa", "moa.proposers=[qwen1.5-72b,dbrx]", "moa.aggregator=llama-3-70b"),
)

CONVERSATIONS: tuple[tuple[tuple[str, ...], str | None], ...] = (
    (("Why is the sky blue?",), None),
    (("Write a haiku about rain.", "Now make it about snow."), None),
    (("Name three prime numbers.",), "You are a careful assistant."),
)


class Recorder:
    """A generator that answers deterministically from the request and writes down each call
    as its cache key (under a fixed endpoint identity), model, sample and ledger tags."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def generate(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        *,
        sample: int = 0,
        tags: Mapping[str, str] | None = None,
    ) -> CallOutcome:
        key = call_key("golden", model, messages, config, sample)
        self.calls.append({"key": key, "model": model, "sample": sample, "tags": dict(tags or {})})
        text = "2" if (tags or {}).get("role") == "ranker" else f"Answer {key[:12]}."
        return CallOutcome(Completion(text, 10, 5), CallRecord(key=key, model=model, sample=sample))


def requests(variant: Sequence[str]) -> dict[str, Any]:
    """The variant's run identity (`run.json`) and every call it makes over `CONVERSATIONS`,
    in a canonical order."""
    name, *overrides = variant
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", [f"moa={name}", *overrides])
    settings = resolve(cfg)
    spec = settings.spec
    recorder = Recorder()

    async def go() -> None:
        for turns, system in CONVERSATIONS:
            await Mixture(spec, recorder).converse(turns, CONFIG, {"instance": "x"}, system)

    asyncio.run(go())
    calls = sorted(recorder.calls, key=lambda c: json.dumps(c, sort_keys=True))
    return {"identity": identity_of(settings).to_json(), "calls": calls}


def all_requests() -> dict[str, dict[str, Any]]:
    return {" ".join(v): requests(v) for v in VARIANTS}


def digest(found: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(found, sort_keys=True).encode()).hexdigest()


if __name__ == "__main__":
    found = all_requests()
    if "--write" in sys.argv:
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
    for variant, made in found.items():
        print(f"{len(made['calls']):4d} calls  {digest(made)[:12]}  {variant}")
