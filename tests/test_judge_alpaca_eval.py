"""AlpacaEval judge: checked against alpaca_eval's own pipeline and its published annotations."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from eval.judges import alpaca_eval as ae
from eval.judges import alpaca_eval_metrics as metrics
from eval.judges import alpaca_upstream
from moa.types import (
    Completion,
    GenerateConfig,
    TokenLogprob,
)

from .fakes import FakeJudge

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "alpaca_eval"
ANNOTATIONS = DATA / "annotations" / "alpaca-7b.weighted_alpaca_eval_gpt4_turbo.json"
PUBLISHED_WIN_RATE = 2.5915
needs_data = pytest.mark.skipif(
    not ANNOTATIONS.exists(), reason=f"benchmark data not found at {ANNOTATIONS}"
)


@pytest.fixture
def keep_root_log_level() -> Iterator[None]:
    """Importing alpaca_eval.annotators (the oracle) sets the root logger to INFO."""
    level = logging.getLogger().level
    yield
    logging.getLogger().setLevel(level)


@pytest.fixture(scope="module")
def published() -> list[ae.Annotation]:
    return ae.read_annotations(ANNOTATIONS)


def _raw_preference(raw: Mapping[str, Any]) -> float:
    tops = raw["logprobs"]["content"][0]["top_logprobs"]
    probs = {t["token"]: math.exp(t["logprob"]) for t in tops}
    m, big_m = probs.get("m", 0.0), probs.get("M", 0.0)
    return 2 - m / (m + big_m)


@needs_data
def test_rescoring_reproduces_every_published_preference(published: list[ae.Annotation]) -> None:
    rescored = ae.rescore(published)
    assert len(rescored) == 805
    assert all(a.failure is None for a in rescored)
    for old, new in zip(published, rescored, strict=True):
        assert old.preference is not None and new.preference is not None
        assert new.preference == pytest.approx(old.preference, abs=1e-6), old.pair.instruction


@needs_data
def test_rescoring_reproduces_the_published_win_rate(published: list[ae.Annotation]) -> None:
    scores = metrics.win_rates(ae.rescore(published), length_controlled=False)
    assert round(scores.win_rate, 4) == PUBLISHED_WIN_RATE
    assert scores.n_total == 805
    assert (scores.n_wins, scores.n_wins_base, scores.n_draws) == (17, 785, 3)
    assert scores.lc_unavailable == "not requested"
    assert scores.failures == {"call": 0, "parse": 0}


@needs_data
def test_swap_decision_matches_the_published_rows(published: list[ae.Annotation]) -> None:
    """A confident raw answer tells which order was shown: unchanged if not swapped, else 3-x."""
    seen = {True: 0, False: 0}
    for a in published:
        if a.raw_completion is None:
            continue
        raw = _raw_preference(a.raw_completion)
        if abs(raw - 1.5) < 0.4:
            continue
        assert a.preference is not None
        shown_swapped = abs(a.preference - (3 - raw)) < 1e-3
        assert shown_swapped == ae.is_switched(a.pair.instruction), a.pair.instruction
        seen[shown_swapped] += 1
    assert seen[True] > 300 and seen[False] > 300


@needs_data
def test_pairs_join_model_outputs_to_the_baseline_in_its_order(
    published: list[ae.Annotation],
) -> None:
    baseline = json.loads((DATA / "alpaca_eval_gpt4_baseline.json").read_text(encoding="utf-8"))
    model = json.loads((DATA / "model_outputs" / "Together-MoA.json").read_text(encoding="utf-8"))
    pairs = ae.make_pairs(baseline, list(reversed(model)))
    assert [p.instruction for p in pairs] == [a.pair.instruction for a in published]
    assert {(p.generator_1, p.generator_2) for p in pairs} == {
        ("gpt4_1106_preview", "Together-MoA")
    }
    assert pairs[0].output_1 == published[0].pair.output_1
    assert pairs[0].dataset == published[0].pair.dataset


def _oracle_rows(published: list[ae.Annotation]) -> list[ae.Annotation]:
    braces = [a for a in published if "{" in a.pair.instruction][:3]
    tie = next(a for a in published if a.pair.output_1 == a.pair.output_2)
    return [*published[:8], *braces, tie]


@needs_data
def test_prompts_and_preferences_match_alpaca_evals_own_pipeline(
    published: list[ae.Annotation], keep_root_log_level: None
) -> None:
    """Run alpaca_eval's PairwiseAnnotator with the judge call replaced by the published answers.

    Every prompt it renders must be one of ours to the byte (so the swap agrees too), and the
    preferences it derives must be ours.
    """
    from alpaca_eval.annotators import PairwiseAnnotator
    from alpaca_eval.utils import prompt_to_chatml

    rows = _oracle_rows(published)
    annotator = ae.load_annotator()
    ours = {}
    for a in rows:
        switched = ae.is_switched(a.pair.instruction)
        ours[ae.render_prompt(a.pair, annotator.template, switched=switched)] = a

    captured: list[str] = []

    def fake_completions(prompts: Sequence[str], **_: Any) -> dict[str, list[Any]]:
        captured.extend(prompts)
        raws = [ours[p].raw_completion for p in prompts]
        n = len(raws)
        return {
            "completions": [r["text"] for r in raws if r is not None],
            "price_per_example": [0.0] * n,
            "time_per_example": [0.0] * n,
            "completions_all": raws,
        }

    oracle = PairwiseAnnotator(annotators_config=ae.ANNOTATOR, caching_path=None)
    oracle.annotators[ae.ANNOTATOR].fn_completions = fake_completions
    out = oracle.annotate_head2head(
        outputs_1=[
            {"instruction": a.pair.instruction, "output": a.pair.output_1, "generator": "gpt4"}
            for a in rows
        ],
        outputs_2=[
            {"instruction": a.pair.instruction, "output": a.pair.output_2, "generator": "m"}
            for a in rows
        ],
    )

    assert len(captured) == len(rows) - 1  # all but the tie were sent
    assert sorted(captured) == sorted(p for p, a in ours.items() if a.raw_completion is not None)
    mine = {a.pair.instruction: a for a in ae.rescore(rows)}
    for row in out:
        assert row["preference"] == pytest.approx(mine[row["instruction"]].preference, abs=1e-9)
    for prompt, a in ours.items():
        chat = [dict(m) for m in ae.build_messages(a.pair, annotator)]
        assert chat == prompt_to_chatml(prompt.strip())


def test_annotator_settings_come_from_the_installed_config() -> None:
    annotator = ae.load_annotator()
    assert annotator.judge == "openai/gpt-4-1106-preview"
    assert annotator.config == GenerateConfig(
        temperature=1.0, max_tokens=1, top_p=1.0, logprobs=True, top_logprobs=5
    )
    assert "{instruction}" in annotator.template and "{output_2}" in annotator.template
    assert annotator.parser_kwargs["numerator_token"] == "m"


def _answer(m: float, big_m: float) -> Completion:
    top = (("m", m), ("M", big_m), ("The", -20.0))
    token = "m" if m > big_m else "M"
    return Completion(token, 400, 1, "length", (TokenLogprob(token, max(m, big_m), top),))


def _pair(instruction: str, output_2: str = "model answer") -> ae.Pair:
    return ae.Pair(instruction, "baseline answer", "gpt4_1106_preview", output_2, "moa", "x")


async def test_annotate_runs_concurrently_and_records_failures(tmp_path: Path) -> None:
    pairs = [
        _pair("confident question"),
        _pair("failing question"),
        _pair("no logprobs question"),
        _pair("off-format question"),
        _pair("tie question", output_2="baseline answer"),
    ]
    judge = FakeJudge(
        {
            "confident question": _answer(-0.01, -5.0),
            "failing question": None,
            "no logprobs question": Completion("M"),
            "off-format question": Completion("The", logprobs=(TokenLogprob("The", 0.0),)),
        },
        cost_usd=0.01,
    )
    out = await ae.annotate(judge, pairs)

    assert len(judge.calls) == 4  # the tie needs no call
    for call in judge.calls:
        assert call.model == "openai/gpt-4-1106-preview"
        config = call.config
        assert config.max_tokens == 1 and config.logprobs and config.top_logprobs == 5
        assert call.tags == {"role": "judge"}
    confident, failing, no_logprobs, off_format, tie = out
    m_first = 2 - 0.99
    expected = 3 - m_first if ae.is_switched("confident question") else m_first
    assert confident.preference == pytest.approx(expected, abs=1e-2)
    assert confident.price_per_example == 0.01
    assert failing.preference is None and failing.failure is not None
    assert failing.failure.kind == "call" and "400" in failing.failure.reason
    assert no_logprobs.failure is not None and no_logprobs.failure.kind == "parse"
    assert off_format.failure is not None and "among the top logprobs" in off_format.failure.reason
    assert tie.preference == 1.5 and tie.failure is None

    path = tmp_path / "annotations.json"
    ae.write_annotations(path, out)
    back = ae.read_annotations(path)
    assert [a.preference for a in back] == pytest.approx(
        [a.preference for a in out], nan_ok=True, abs=1e-9
    )
    rescored = ae.rescore(back)
    assert [a.failure.kind if a.failure else None for a in rescored] == [
        None,
        "call",
        "parse",
        "parse",
        None,
    ]
    scores = metrics.win_rates(rescored, length_controlled=False)
    assert scores.n_total == 2 and scores.failures == {"call": 1, "parse": 2}


@needs_data
def test_write_then_read_keeps_the_published_rows(
    published: list[ae.Annotation], tmp_path: Path
) -> None:
    path = tmp_path / "annotations.json"
    ae.write_annotations(path, published)
    back = ae.read_annotations(path)
    assert [a.to_json() for a in back] == [a.to_json() for a in published]


def _offline(**_: Any) -> str:
    raise OSError("network is unreachable")


@needs_data
def test_lc_is_unavailable_offline_but_win_rate_is_reported(
    published: list[ae.Annotation], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics, "hf_hub_download", _offline)
    scores = metrics.win_rates(published)
    assert scores.length_controlled_winrate is None and scores.lc_standard_error is None
    assert scores.lc_unavailable is not None
    assert "df_gamed.csv" in scores.lc_unavailable and "offline" in scores.lc_unavailable
    assert round(scores.win_rate, 4) == PUBLISHED_WIN_RATE


def test_lc_is_computed_by_alpaca_eval_once_its_files_are_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keep_root_log_level: None
) -> None:
    """Plumbing only: a small synthetic df_gamed.csv stands in for the cached download."""
    from alpaca_eval.metrics import glm_winrate

    n = 30
    gamed = pd.DataFrame(
        [
            {
                "model": model,
                "index": i,
                "preference": ((i * 7 + len(model)) % 10) / 10,
                "std_delta_len": (i % 5 - 2) / 2,
                "instruction_difficulty": (i % 7) / 3 - 1,
                "not_gamed_baseline": False,
            }
            for model in ("gamed_verbose", "gamed_concise")
            for i in range(n)
        ]
    )
    gamed.to_csv(tmp_path / "df_gamed.csv", index=False)
    fetched: list[dict[str, Any]] = []

    def cached(**kwargs: Any) -> str:
        fetched.append(kwargs)
        return str(tmp_path / kwargs["filename"])

    monkeypatch.setattr(metrics, "hf_hub_download", cached)
    monkeypatch.setattr(glm_winrate, "hf_hub_download", cached)
    rows = [
        ae.Annotation(
            ae.Pair(f"q{i}", "b" * (10 + i), "base", "m" * (5 + 3 * i), "moa"),
            ae.ANNOTATOR,
            1 + ((i * 3) % 10) / 10,
        )
        for i in range(n)
    ]
    scores = metrics.win_rates(rows)

    assert scores.lc_unavailable is None
    assert scores.length_controlled_winrate is not None
    assert 0 <= scores.length_controlled_winrate <= 100
    assert [f["filename"] for f in fetched[:2]] == list(metrics.LC_FILES)
    assert fetched[0]["repo_id"] == "tatsu-lab/alpaca_eval"
    assert fetched[0]["repo_type"] == "dataset"


@needs_data
@pytest.mark.ci_may_skip
def test_lc_matches_the_published_leaderboard_when_cached(
    published: list[ae.Annotation], monkeypatch: pytest.MonkeyPatch, keep_root_log_level: None
) -> None:
    """Runs only where a previous online run cached the LC files; never touches the network."""
    from alpaca_eval.metrics import glm_winrate
    from huggingface_hub import hf_hub_download

    def local_only(**kwargs: Any) -> str:
        return str(hf_hub_download(**{**kwargs, "local_files_only": True}))

    try:
        for name in metrics.LC_FILES:
            local_only(filename=name, **alpaca_upstream.hub_download_kwargs())
    except Exception as exc:
        pytest.skip(
            f"needs alpaca-eval's LC files ({', '.join(metrics.LC_FILES)}) in the local Hugging "
            "Face cache, which one online judged AlpacaEval run leaves there; "
            f"{type(exc).__name__}"
        )
    monkeypatch.setattr(metrics, "hf_hub_download", local_only)
    monkeypatch.setattr(glm_winrate, "hf_hub_download", local_only)
    scores = metrics.win_rates(ae.rescore(published))
    assert scores.length_controlled_winrate == pytest.approx(5.875487163278986, abs=0.01)


def _pandas_file(path: Path, annotations: Sequence[ae.Annotation]) -> bytes:
    """What `alpaca_eval.evaluate` writes: pandas `to_json` straight to the file."""
    pd.DataFrame([a.to_json() for a in annotations]).to_json(path, orient="records", indent=2)
    return path.read_bytes()


def test_annotations_are_written_byte_for_byte_as_pandas_writes_them(tmp_path: Path) -> None:
    """Rendered to a string and renamed into place, the file is the very bytes pandas writes."""
    raw = ae.raw_completion(_answer(-0.01, -5.0))
    rows = [
        ae.Annotation(_pair("naïve “quotes” \u2014 ünïcode"), ae.ANNOTATOR, 1.25, raw, 0.01, 0.5),
        ae.Annotation(_pair("no preference"), ae.ANNOTATOR, None),
        ae.Annotation(_pair("tie", output_2="baseline answer"), ae.ANNOTATOR, 1.5),
    ]
    ours = tmp_path / "annotations.json"
    ae.write_annotations(ours, rows)
    assert ours.read_bytes() == _pandas_file(tmp_path / "pandas.json", rows)
    ae.write_annotations(ours, [])
    assert ours.read_bytes() == _pandas_file(tmp_path / "empty.json", [])


@needs_data
def test_published_annotations_are_rewritten_byte_for_byte_as_pandas_writes_them(
    published: list[ae.Annotation], tmp_path: Path
) -> None:
    ours = tmp_path / "annotations.json"
    ae.write_annotations(ours, published)
    assert ours.read_bytes() == _pandas_file(tmp_path / "pandas.json", published)
