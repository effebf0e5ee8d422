"""The run browser (`task=view`), opened in headless Chromium from `file://` on full-size
scripted runs of AlpacaEval and MT-Bench and a small FLASK run: what a person would see."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eval.benchmarks.data import Data
from eval.cli import dispatch
from eval.judges import alpaca_eval as ae
from eval.judges import flask as fj
from eval.judges import mt_bench as mj
from eval.judges.pairwise import outcome_of
from eval.rundir import InstanceResult, RunDir
from eval.view.site import build_site
from moa.events import ContextOverflow
from tests.kit import browser
from tests.kit.cli import scripted_config as config

from .conftest import SHARED_DATA

pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")

# A run whose aggregator's window is too small for all six proposals: `drop_last` drops some.
SMALL_WINDOW = (
    "+catalogue.tiny={address:together/tiny/agg,price_in:1,price_out:1,context_length:2800}"
)
RUNS = (
    ("benchmark=alpaca_eval", "moa=moa"),
    ("benchmark=alpaca_eval", "moa=moa_lite"),
    ("benchmark=mt_bench", "moa=moa"),
    ("benchmark=mt_bench", "moa=moa_lite"),
    ("benchmark=flask", "moa=moa", "benchmark.limit=30"),
    ("benchmark=flask", "moa=moa_lite", "benchmark.limit=30"),
    ("benchmark=alpaca_eval", "moa=moa_lite", "moa.name=lite_drop", "benchmark.limit=3",
     "context_overflow=drop_last", SMALL_WINDOW, "moa.aggregator=tiny"),
    # no proposer layer at all, and a final call that picks a proposal instead of writing one
    ("benchmark=mt_bench", "moa=single", "moa.aggregator=qwen1.5-72b", "benchmark.limit=2"),
    ("benchmark=mt_bench", "moa=llm_ranker", "benchmark.limit=2"),
    # layers of other kinds: a ranker passing three on, and a final sliding-window strategy
    ("benchmark=mt_bench", "moa=rank_fuse", "benchmark.limit=2"),
    ("benchmark=mt_bench", "moa=self_moa_seq", "benchmark.limit=2"),
)  # fmt: skip


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The full-size runs, generated and judged, and the site built from them."""
    root = tmp_path_factory.mktemp("view")
    for overrides in RUNS:
        assert asyncio.run(dispatch(config(root, *overrides))) == 0
    site = f"view.out_dir={root / 'site'}"
    assert asyncio.run(dispatch(config(root, "task=view", site))) == 0
    return root


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    if not browser.available():
        if os.environ.get("CI"):
            pytest.fail("chromium and chromedriver are missing: `make browser` installs them")
        pytest.skip("chromium and chromedriver are missing: `make browser` installs them")
    with browser.chromium() as driver:
        yield driver


@pytest.fixture
def page(root: Path, driver: Any) -> Iterator[Any]:
    """The browser, its console checked for errors after each test."""
    browser.errors(driver)
    yield driver
    assert browser.errors(driver) == []


def url(root: Path, route: str = "") -> str:
    return (root / "site" / "index.html").as_uri() + route


def run(root: Path, benchmark: str, name: str) -> RunDir:
    return RunDir(root / "runs" / benchmark / name)


def finished(root: Path, benchmark: str, name: str) -> dict[str, InstanceResult]:
    return run(root, benchmark, name).finished()


def texts(page: Any, css: str) -> list[str]:
    """The exact text of every element matching `css` (as the page holds it, not re-flowed)."""
    from selenium.webdriver.common.by import By

    return [e.get_property("textContent") for e in page.find_elements(By.CSS_SELECTOR, css)]


def rows(page: Any) -> list[Any]:
    from selenium.webdriver.common.by import By

    return page.find_elements(By.CSS_SELECTOR, "table.list tbody tr")


def test_index_lists_every_run_with_the_papers_number(root: Path, page: Any) -> None:
    from selenium.webdriver.common.by import By

    browser.open_view(page, url(root))
    listed = {
        e.get_attribute("data-run") for e in page.find_elements(By.CSS_SELECTOR, "tr[data-run]")
    }
    assert listed == {
        "alpaca_eval/moa@scripted", "alpaca_eval/moa_lite@scripted",
        "alpaca_eval/lite_drop@scripted~first3", "mt_bench/moa@scripted",
        "mt_bench/moa_lite@scripted", "flask/moa@scripted~first30",
        "flask/moa_lite@scripted~first30", "mt_bench/single_qwen1.5-72b@scripted~first2",
        "mt_bench/llm_ranker_l2@scripted~first2", "mt_bench/rank_fuse@scripted~first2",
        "mt_bench/self_moa_seq@scripted~first2",
    }  # fmt: skip
    moa = page.find_element(By.CSS_SELECTOR, 'tr[data-run="alpaca_eval/moa@scripted"]').text
    # the win rate with its interval, and Table 2a's 59.8 beside it (no LC offline)
    assert "805" in moa and "win rate" in moa and "59.80" in moa and "10,465" not in moa
    mt = page.find_element(By.CSS_SELECTOR, 'tr[data-run="mt_bench/moa@scripted"]').text
    assert "average" in mt and "9.25" in mt  # Table 2b's MoA


def test_a_deep_link_shows_an_alpaca_eval_instance_end_to_end(root: Path, page: Any) -> None:
    """Instruction, each proposal of both layers, the final answer, the verdict."""
    browser.open_view(page, url(root, "#alpaca_eval/moa@scripted/12"))
    result = finished(root, "alpaca_eval", "moa@scripted")["12"]
    turn = result.trace.turns[0]
    assert texts(page, ".user pre") == [result.turns[0]]
    shown = texts(page, ".call.proposal pre.text")
    assert shown == [c.text for layer in turn.layers for c in layer] and len(shown) == 12
    assert texts(page, ".call.final pre.text") == [turn.final.text if turn.final else None]
    assert texts(page, ".answer pre") == [turn.output]
    annotation = next(
        a
        for a in ae.read_annotations(
            run(root, "alpaca_eval", "moa@scripted").native("annotations.json")
        )
        if a.pair.instruction == result.turns[0]
    )
    verdict = page.find_element("css selector", ".verdict").text
    assert (
        outcome_of(annotation.preference) in verdict and f"{annotation.preference:.3f}" in verdict
    )
    assert "shown first" in verdict
    # the reference output it was judged against is there, behind its summary
    assert texts(page, "details.reference pre") == [annotation.pair.output_1]


def test_a_variant_name_links_to_its_run(root: Path, page: Any) -> None:
    browser.open_view(page, url(root, "#alpaca_eval/moa_lite/3"))
    assert page.execute_script("return document.body.dataset.view") == "instance"
    assert texts(page, ".user pre") == [
        finished(root, "alpaca_eval", "moa_lite@scripted")["3"].turns[0]
    ]


def test_mt_bench_shows_both_turns_their_judgments_and_references(root: Path, page: Any) -> None:
    rundir = run(root, "mt_bench", "moa@scripted")
    metrics = rundir.metrics()
    assert metrics is not None
    judgments = [
        j for j in mj.read_judgments(mj.judgment_path(rundir.path, metrics.judge))
        if j.question_id == 111  # math: judged against a reference answer
    ]  # fmt: skip
    browser.open_view(page, url(root, "#mt_bench/moa@scripted/111"))
    result = rundir.finished()["111"]
    assert texts(page, ".user pre") == result.turns and len(result.turns) == 2
    assert texts(page, ".answer pre") == result.outputs
    assert len(texts(page, ".call.proposal")) == 24  # 2 turns x 2 layers x 6
    assert texts(page, ".reading pre.judgment") == [
        j.judgment for j in sorted(judgments, key=lambda j: j.turn)
    ]
    assert texts(page, ".reference pre") == result.references
    verdict = page.find_element("css selector", ".verdict").text
    assert all(f"{j.score:g} / 10" in verdict for j in judgments) and "math" in page.page_source


def test_flask_shows_the_review_and_skill_scores(root: Path, page: Any) -> None:
    rundir = run(root, "flask", "moa@scripted~first30")
    review = next(
        r for r in fj.read_reviews(rundir.native("review", "reviews.jsonl")) if r.item["idx"] == 5
    )
    browser.open_view(page, url(root, "#flask/moa@scripted~first30/5"))
    assert texts(page, ".reading pre.judgment") == [review.review]
    facts = page.find_element("css selector", ".reading dl").text
    assert all(f"{skill}\n{score}" in facts for skill, score in review.score.items())
    assert texts(page, ".reference pre") == [review.item["answer"]]


def test_side_by_side_filters_to_disagreements_and_sorts_by_difference(
    root: Path, page: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    def prefs(name: str) -> dict[str, float | None]:
        path = run(root, "alpaca_eval", name).native("annotations.json")
        return {a.pair.instruction: a.preference for a in ae.read_annotations(path)}

    a, b = prefs("moa@scripted"), prefs("moa_lite@scripted")
    differ = sum(outcome_of(a[k]) != outcome_of(b[k]) for k in a)
    browser.open_view(page, url(root, "#compare/alpaca_eval/moa@scripted/moa_lite@scripted"))
    assert len(rows(page)) == 805
    page.find_element(By.CSS_SELECTOR, "input.disagree").click()
    browser.wait_ready(page)
    shown = rows(page)
    assert 0 < len(shown) == differ < 805
    for row in shown[:50]:
        left, right = (row.find_element(By.CSS_SELECTOR, f"td.outcome-{s}").text for s in "ab")
        assert left != right
    Select(page.find_element(By.CSS_SELECTOR, "select.sort")).select_by_value("diff-abs")
    browser.wait_ready(page)
    gaps = [abs(float(r.find_element(By.CSS_SELECTOR, "td.num").text)) for r in rows(page)]
    assert gaps == sorted(gaps, reverse=True)
    # a category, then a word of the text, narrow the list further
    Select(page.find_element(By.CSS_SELECTOR, "select.tagfilter")).select_by_value("koala")
    browser.wait_ready(page)
    koala = rows(page)
    assert 0 < len(koala) < len(shown)
    assert all("koala" in r.text for r in koala)
    ours, lite = (
        finished(root, "alpaca_eval", "moa@scripted"),
        finished(root, "alpaca_eval", "moa_lite@scripted"),
    )
    word = max(ours[koala[0].get_attribute("data-id")].turns[0].split(), key=len).lower()
    page.find_element(By.CSS_SELECTOR, "input.search").send_keys(word)
    browser.wait_ready(page)
    found = [r.get_attribute("data-id") for r in rows(page)]
    assert 0 < len(found) <= len(koala)
    for id_ in found:
        text = " ".join([*ours[id_].turns, *(ours[id_].outputs or ()), *(lite[id_].outputs or ())])
        assert word in text.lower()


def test_side_by_side_shows_each_runs_answer_and_verdict(root: Path, page: Any) -> None:
    from selenium.webdriver.common.by import By

    browser.open_view(page, url(root, "#compare/mt_bench/moa@scripted/moa_lite@scripted/81"))
    sides = page.find_elements(By.CSS_SELECTOR, ".side")
    assert len(sides) == 2
    for side, name in zip(sides, ("moa@scripted", "moa_lite@scripted"), strict=True):
        result = finished(root, "mt_bench", name)["81"]
        answers = [
            e.get_property("textContent")
            for e in side.find_elements(By.CSS_SELECTOR, ".answer pre")
        ]
        assert answers == result.outputs
        assert len(side.find_elements(By.CSS_SELECTOR, ".reading pre.judgment")) == 2


def test_a_dropped_reference_is_shown_as_dropped(root: Path, page: Any) -> None:
    result = finished(root, "alpaca_eval", "lite_drop@scripted~first3")["0"]
    event = result.trace.turns[0].events[0]
    assert isinstance(event, ContextOverflow) and event.policy == "drop_last"
    browser.open_view(page, url(root, "#alpaca_eval/lite_drop@scripted~first3/0"))
    final = page.find_element("css selector", ".call.final").text
    assert "dropped the last" in final
    n = event.dropped
    marks = [t for t in texts(page, ".call.proposal .policy") if t.startswith("dropped for")]
    assert len(marks) == n


def test_a_model_alone_and_a_ranker_show_as_they_ran(root: Path, page: Any) -> None:
    alone = finished(root, "mt_bench", "single_qwen1.5-72b@scripted~first2")["81"]
    browser.open_view(page, url(root, "#mt_bench/single_qwen1.5-72b@scripted~first2/81"))
    assert texts(page, ".call.proposal") == [] and texts(page, ".answer pre") == alone.outputs
    assert len(texts(page, ".call.final")) == 2  # one call per turn, the model alone
    ranked = finished(root, "mt_bench", "llm_ranker_l2@scripted~first2")["81"]
    browser.go(page, "mt_bench/llm_ranker_l2@scripted~first2/81")
    picks = texts(page, ".answer h4")
    assert texts(page, ".answer pre") == ranked.outputs and len(picks) == 2
    # the ranker's own answer is its pick, and the answer is the proposal it picked
    assert all(p == "Answer (the proposal picked)" for p in picks)


def test_layers_of_other_kinds_say_what_they_do(root: Path, page: Any) -> None:
    browser.open_view(page, url(root, "#mt_bench/rank_fuse@scripted~first2/81"))
    heads = [h.split(" ")[0:3] for h in texts(page, ".layer h4")]
    assert ["Layer", "2", "(rank)"] in heads
    fused = finished(root, "mt_bench", "rank_fuse@scripted~first2")["81"]
    assert texts(page, ".answer pre") == fused.outputs
    browser.open_view(page, url(root, "#mt_bench/self_moa_seq@scripted~first2/81"))
    heads = texts(page, ".layer h4")
    assert any(h.startswith("Layer 2 (strategy)") for h in heads)


def test_text_is_shown_as_text_never_as_markup(root: Path, page: Any) -> None:
    """Instructions hold HTML (`<div>`, `<script>`): the page shows them as typed."""
    results = finished(root, "alpaca_eval", "moa@scripted")
    id_, result = next(
        (k, r) for k, r in results.items() if "<" in r.turns[0] and ">" in r.turns[0]
    )
    browser.open_view(page, url(root, f"#alpaca_eval/moa@scripted/{id_}"))
    assert texts(page, ".user pre") == [result.turns[0]]
    assert page.find_elements("css selector", ".user pre *") == []


def test_an_unknown_link_says_so(root: Path, page: Any) -> None:
    browser.open_view(page, url(root, "#alpaca_eval/no_such_run/1"))
    assert "no run alpaca_eval/no_such_run" in page.find_element("css selector", "#app").text
    browser.go(page, "#mt_bench/moa@scripted/999")
    assert "No instance 999" in page.find_element("css selector", "#app").text


def test_a_rebuild_rewrites_only_the_runs_that_changed(root: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for name in ("moa@scripted", "moa_lite@scripted"):
        shutil.copytree(root / "runs" / "mt_bench" / name, runs / "mt_bench" / name)
    out, data = tmp_path / "site", Data(str(SHARED_DATA))
    first = build_site(runs, out, data)
    assert sorted(first.built) == ["mt_bench/moa@scripted", "mt_bench/moa_lite@scripted"]
    again = build_site(runs, out, data)
    assert again.built == [] and len(again.kept) == 2
    metrics = runs / "mt_bench" / "moa@scripted" / "metrics.json"
    metrics.write_text(metrics.read_text())  # touched: a new modification time
    assert build_site(runs, out, data).built == ["mt_bench/moa@scripted"]
    shutil.rmtree(runs / "mt_bench" / "moa_lite@scripted")
    last = build_site(runs, out, data)
    assert last.kept == ["mt_bench/moa@scripted"]
    assert len(list((out / "data").iterdir())) == 1  # the removed run's files are gone
