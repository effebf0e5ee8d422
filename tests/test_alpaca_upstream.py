"""The AlpacaEval judge builds its requests without importing the `alpaca_eval` package, and its
string helpers give upstream's own results to the byte (upstream's functions are the oracle)."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from eval.judges import alpaca_eval as ae
from eval.judges import alpaca_upstream

ROOT = Path(__file__).resolve().parents[1]
ANNOTATIONS = (
    ROOT.parent
    / "shared"
    / "data"
    / "alpaca_eval"
    / "annotations"
    / "alpaca-7b.weighted_alpaca_eval_gpt4_turbo.json"
)
needs_data = pytest.mark.skipif(not ANNOTATIONS.exists(), reason=f"no data at {ANNOTATIONS}")


@pytest.fixture(autouse=True)
def keep_root_log_level() -> Iterator[None]:
    """Importing alpaca_eval (the oracle) sets the root logger to INFO."""
    level = logging.getLogger().level
    yield
    logging.getLogger().setLevel(level)


def test_a_judges_first_request_is_built_without_importing_alpaca_eval() -> None:
    script = """
import sys
from eval.judges import alpaca_eval as ae
pair = ae.Pair("Say {output_2}.", "a", "gpt4", "b {instruction}", "ours")
for name in (ae.ANNOTATOR, ae.RANKING_ANNOTATOR):
    annotator = ae.load_annotator(name)
    assert ae.build_messages(pair, annotator), name
assert ae.is_switched("x") in (True, False)
assert ae.alpaca_upstream.package_version().startswith("alpaca_eval==")
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("alpaca_eval", "pandas", "scipy"))
assert heavy == [], heavy
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"


@needs_data
def test_prompts_chat_and_swap_match_upstreams_helpers() -> None:
    import pandas as pd
    from alpaca_eval import utils

    template = ae.load_annotator().template
    rows = ae.read_annotations(ANNOTATIONS)
    assert len(rows) == 805
    for a in rows:
        # the swapped order, so both outputs are rendered in both places over the set
        fields = {"instruction": a.pair.instruction, "output_1": a.pair.output_2}
        fields["output_2"] = a.pair.output_1
        theirs, _ = utils.make_prompts(pd.DataFrame([fields]), template=template)
        ours = alpaca_upstream.make_prompt(template, fields)
        assert ours == theirs[0]
        assert alpaca_upstream.prompt_to_chatml(ours) == utils.prompt_to_chatml(ours.strip())
        seed = f"is_switched_outputs{a.pair.instruction}0"
        choices = [False, True]
        assert alpaca_upstream.random_seeded_choice(seed, choices) == utils.random_seeded_choice(
            seed=seed, choices=choices
        )
    assert alpaca_upstream.package_version() == utils.get_multi_package_version(["alpaca_eval"])


def test_a_named_system_message_is_read_as_upstream_reads_it() -> None:
    from alpaca_eval import utils

    prompt = (
        "<|im_start|>system\nBe brief.\n<|im_end|>\n"
        "<|im_start|>system name=example_user\nKnock knock.\n<|im_end|>\n"
        "<|im_start|>user\nOrange.\n<|im_end|>"
    )
    assert alpaca_upstream.prompt_to_chatml(prompt) == utils.prompt_to_chatml(prompt)
    with pytest.raises(ValueError):
        alpaca_upstream.prompt_to_chatml("no markup")
