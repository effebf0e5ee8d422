"""Every number says what made it: a changed preset is not the paper's row, judges and providers
are never mixed, repeats are grouped everywhere, every run is found, stand-ins are named."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
import pytest
import yaml
from hydra import compose, initialize_config_dir

from eval.benchmarks.data import Data
from eval.plan import plan_points
from eval.records import AgentRecord, RunIdentity
from eval.report.build import write_report
from eval.report.pairing import comparisons
from eval.report.section import judge_mark
from eval.run_filter import RunFilter
from eval.runs import Run, load_runs
from eval.settings import CONF_DIR, resolve, to_dict
from eval.suite import EXPERIMENTS, sweep_points
from eval.variant_name import MARK, changed_name, preset_section
from eval.view.site import build_site
from moa.errors import ConfigError
from tests.kit import browser
from tests.kit.cli import MOA_BENCH, SHARED_DATA, command, run, scripted_config, scripted_runs
from tests.kit.fakeserver import FakeServer, ModelProfile, serve_in_thread

needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")

QWEN25 = "+catalogue.qwen25-72b={address:together/Qwen/Qwen2.5-72B-Instruct-Turbo,price_in:1.2,price_out:1.2}"  # noqa: E501


def scripted(root: Path, *overrides: str) -> list[str]:
    """The real command, offline on the scripted fake, its files under `root`."""
    return [
        MOA_BENCH, "provider_override=scripted", f"data_dir={SHARED_DATA}",
        f"results_dir={root / 'runs'}", f"cache.path={root / 'calls.sqlite'}",
        "benchmark=alpaca_eval", *overrides,
    ]  # fmt: skip


def report_of(root: Path, reference: str = "moa") -> Path:
    out = root / "report"
    assert write_report(root / "runs", out, reference).skipped == []
    return out


# --- 1. a changed preset ---------------------------------------------------------------------


def test_the_naming_rule() -> None:
    preset = {"name": "moa_lite", "aggregator": "qwen1.5-72b", "layers": [[{"model": "a"}]]}
    assert changed_name(dict(preset), preset) == "moa_lite"
    changed = {**preset, "aggregator": "qwen25-72b"}
    name = changed_name(changed, preset)
    assert name.startswith(f"moa_lite{MARK}") and name == changed_name(dict(changed), preset)
    assert changed_name({**preset, "aggregator": "x"}, preset) != name  # another change
    assert changed_name({**changed, "name": "mine"}, preset) == "mine"  # named: kept


def test_no_experiment_of_the_paper_is_renamed() -> None:
    """The sweeps set knobs that their names carry (`single_${.aggregator}`, `fig4_...`): every
    point keeps its name, so its run directory and its report row. (A point's `moa` section is
    the same on every benchmark: each is composed once.)"""
    checked = set()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        for preset in ("moa", "moa_lite", "single", "multi_proposer", "llm_ranker"):
            # the preset as written, read without composing the config, is Hydra's (defaults,
            # relative and absolute interpolations, resolvers)
            assert preset_section(preset) == to_dict(compose("config", [f"moa={preset}"]).moa)
        for experiment in EXPERIMENTS:
            head = compose("config", [f"+experiment={experiment}"], return_hydra_config=True)
            params = {str(k): str(v) for k, v in head.hydra.sweeper.params.items()}
            for point in sweep_points(params):
                moa = tuple(o for o in point if o.startswith("moa"))
                if (experiment, moa) in checked:
                    continue
                checked.add((experiment, moa))
                cfg = compose("config", [f"+experiment={experiment}", *moa])
                (preset,) = [o.split("=", 1)[1] for o in moa if o.startswith("moa=")]
                name = changed_name(to_dict(cfg.moa), preset_section(preset))
                assert name == str(cfg.moa.name), (experiment, moa)
    assert len(checked) > 40


@needs_data
def test_a_changed_preset_is_its_own_run_and_not_the_papers_row(tmp_path: Path) -> None:
    """The README's current-model command (`moa=moa_lite moa.aggregator=qwen25-72b`) wrote
    `moa_lite~first2`, was Table 2a's "MoA-Lite" and refused the real MoA-Lite there later."""
    limit = "benchmark.limit=2"
    changed = run(scripted(tmp_path, "moa=moa_lite", "moa.aggregator=qwen25-72b", QWEN25, limit))
    assert changed.returncode == 0, changed.stderr
    assert "not the preset's run" in changed.stdout
    real = run(scripted(tmp_path, "moa=moa_lite", limit))
    assert real.returncode == 0, real.stderr  # not refused: its directory is its own
    # a run made before the rule, or named so by hand: still not the paper's row
    named = run(scripted(tmp_path, "moa=moa_lite", "moa.name=moa_lite", "moa.aggregator=qwen25-72b",
                         QWEN25, "benchmark.limit=3"))  # fmt: skip
    assert named.returncode == 0, named.stderr
    folders = sorted(p.name for p in (tmp_path / "runs" / "alpaca_eval").iterdir())
    (own,) = [f for f in folders if MARK in f]
    assert own.startswith("moa_lite_changed-") and own.endswith("@scripted~first2")
    assert folders == sorted([own, "moa_lite@scripted~first2", "moa_lite@scripted~first3"])

    report = report_of(tmp_path)
    table2a = pd.read_csv(report / "table2a_alpaca_eval.csv")
    assert table2a["run"].tolist() == ["moa_lite@scripted~first2"]
    other = pd.read_csv(report / "other_alpaca_eval.csv").set_index("run")
    assert set(other.index) == {own, "moa_lite@scripted~first3"}
    note = other.loc["moa_lite@scripted~first3", "note"]
    assert note == "not the paper's MoA-Lite: its aggregator is qwen25-72b, not qwen1.5-72b"


# --- 2. judges and providers ------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_judges(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MoA-Lite on 3 instructions twice: on the scripted fake (its judge `scripted/...`), and
    through the OpenAI client against a loopback server (generation `together/...`, judge
    `openai/gpt-4-1106-preview`)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("needs ../shared/data")
    root = tmp_path_factory.mktemp("judges")
    base = ("benchmark=alpaca_eval", "moa=moa_lite", "benchmark.limit=3")
    scripted_runs(root, [base])
    with serve_in_thread(FakeServer(default=ModelProfile(min_tokens=3, max_tokens=8))) as url:
        done = run(command(root, url, *base[1:], "task=run"))
    assert done.returncode == 0, done.stderr
    return root


@needs_data
def test_two_judges_are_never_in_one_column_nor_paired(two_judges: Path) -> None:
    report = report_of(two_judges, "moa_lite")
    scripted_judge, real_judge = "scripted/gpt-4-1106-preview", "openai/gpt-4-1106-preview"
    rows = {}
    for judge in (scripted_judge, real_judge):
        table = pd.read_csv(report / f"table2a_alpaca_eval{judge_mark(judge)}.csv")
        assert table["judge"].tolist() == [judge]  # one judge per table, named in the row
        rows[judge] = table.iloc[0]
        assert (report / f"figure5_cost{judge_mark(judge)}.png").is_file()  # a plot each
    assert not (report / "table2a_alpaca_eval.csv").exists()
    assert rows[scripted_judge]["provider"] == "scripted"
    assert rows[real_judge]["provider"] == "together"
    # the two runs of the reference variant are not paired: the refusal names both judges
    (paired,) = report.glob("paired_alpaca_eval*.csv")
    (refusal,) = pd.read_csv(paired).to_dict("records")
    assert {refusal["judge"], refusal["minus_judge"]} == {scripted_judge, real_judge}
    assert pd.isna(refusal["difference"]) and pd.isna(refusal["diff_ci_low"])
    assert scripted_judge in refusal["refused"] and real_judge in refusal["refused"]
    index = (report / "index.md").read_text(encoding="utf-8")
    assert "2 judge(s)" in index
    described = [line for line in index.splitlines() if ", judge " in line]  # titles, notes
    assert described and not any(scripted_judge in x and real_judge in x for x in described)


@needs_data
def test_the_report_chooses_its_runs_by_glob_judge_and_provider(two_judges: Path) -> None:
    out = two_judges / "filtered"
    only_real = RunFilter.from_settings({"judges": ["openai/*"]})
    text = str(write_report(two_judges / "runs", out, "moa_lite", only_real))
    assert pd.read_csv(out / "table2a_alpaca_eval.csv")["run"].tolist() == ["moa_lite~first3"]
    assert "runs left out (report.judges=['openai/*'])" in text
    assert "alpaca_eval/moa_lite@scripted~first3 (judge scripted/gpt-4-1106-preview)" in text
    for settings, kept in (
        ({"providers": "scripted"}, ["moa_lite@scripted~first3"]),
        ({"runs": ["alpaca_eval/*~first3"], "providers": ["together"]}, ["moa_lite~first3"]),
        ({"runs": "nothing*"}, []),
    ):
        write_report(two_judges / "runs", out, "moa_lite", RunFilter.from_settings(settings))
        found = sorted(out.glob("table2a_alpaca_eval*.csv"))
        assert [r for p in found for r in pd.read_csv(p)["run"]] == kept, settings
    with pytest.raises(ConfigError, match=r"report.judges=3: give a glob or a list of globs"):
        RunFilter.from_settings({"judges": 3})


def test_pairs_need_the_same_judge_and_the_same_instances() -> None:
    def made(name: str, judge: str, limit: int | None) -> Run:
        identity = RunIdentity("alpaca_eval", name.split("@")[0].split("~")[0], [],
                               AgentRecord("scripted/m", 0, "aggregate"), "aggregate", {},
                               {"limit": limit} if limit else None)  # fmt: skip
        scores = {str(i): float(i % 3) * 50 for i in range(limit or 10)}
        return Run("alpaca_eval", name, identity, Path("/x"),
                          {"judge": judge, "complete": True}, scores=scores)  # fmt: skip

    moa, lite = made("moa", "a/j", None), made("moa_lite", "a/j", None)
    subset, other = made("moa_lite~first5", "a/j", 5), made("moa_lite@x", "b/j", None)
    frame = comparisons([moa, lite, subset, other], "moa").set_index("run")
    assert frame.loc["moa_lite", "minus"] == "moa" and pd.isna(frame.loc["moa_lite", "refused"])
    assert frame.loc["moa_lite", "n_paired"] == 10
    assert frame.loc["moa_lite~first5", "refused"] == (
        "other instances (first5; moa: the whole benchmark)"
    )
    assert frame.loc["moa_lite@x", "refused"] == "judged by b/j, moa by a/j"
    assert frame.loc[["moa_lite~first5", "moa_lite@x"], "difference"].isna().all()
    # a subset is paired with the reference's run on the same subset when there is one
    moa5 = made("moa~first5", "a/j", 5)
    frame = comparisons([moa, subset, moa5], "moa").set_index("run")
    assert frame.loc["moa_lite~first5", "minus"] == "moa~first5"
    assert frame.loc["moa_lite~first5", "n_paired"] == 5


# --- 3. repeats ---------------------------------------------------------------------------------


@needs_data
def test_repeats_are_one_row_in_every_table(tmp_path: Path) -> None:
    """A user's variant run twice was two "other" rows (37.15 and 42.13) while the paper's
    presets were mean ± std: one rule for every table."""
    base = ("benchmark=alpaca_eval", "benchmark.limit=3")
    scripted_runs(tmp_path, [
        (*base, "moa=moa"),
        (*base, "moa=single", "moa.aggregator=gpt-4o", "moa.name=mine", "repeats=2"),
        (*base, "moa=multi_proposer", "moa.n=2", "repeats=2"),  # a cell of Table 3
    ])  # fmt: skip
    report = report_of(tmp_path)
    names = ["mine@scripted~first3", "mine@scripted~first3~run2"]
    runs = {r.name: r for r in load_runs(tmp_path / "runs")[0]}
    rates = [float(runs[n].metrics["win_rate"]) for n in names]
    (other,) = pd.read_csv(report / "other_alpaca_eval.csv").to_dict("records")
    assert other["run"] == ", ".join(names) and other["repeats"] == 2
    assert other["win_rate"] == pytest.approx(np.mean(rates))
    assert other["win_rate_std"] == pytest.approx(np.std(rates, ddof=1))
    paired = pd.read_csv(report / "paired_alpaca_eval.csv").set_index("run")
    assert paired.loc[", ".join(names), "repeats"] == 2  # one row for the two repeats
    (table3,) = pd.read_csv(report / "table3_num_proposers.csv").to_dict("records")
    assert table3["multiple_repeats"] == 2 and table3["multiple_std"] >= 0
    assert "multi_proposer_n2@scripted~first3~run2" in table3["runs"]
    assert "±" in (report / "other_alpaca_eval.md").read_text(encoding="utf-8")


# --- 4. every run is found, and every row has n, an interval and avg_length ------------------


@pytest.fixture(scope="module")
def together_moa(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Together-MoA's published AlpacaEval outputs, replayed (`moa=single
    moa.aggregator=replay/Together-MoA`, no `moa.name`), judged by the scripted fake, in the
    one-segment directory its derived name makes."""
    if not SHARED_DATA.is_dir():
        pytest.skip("needs ../shared/data")
    root = tmp_path_factory.mktemp("replay")
    folder = root / "runs" / "alpaca_eval" / "single_replay_Together-MoA@scripted"
    scripted_runs(root, [("benchmark=alpaca_eval", "moa=single",
                          "moa.aggregator=replay/Together-MoA", f"run_dir={folder}")])  # fmt: skip
    return root


def leaderboard(model: str) -> pd.Series:
    """alpaca-eval's published leaderboard row of a model."""
    return pd.read_csv(SHARED_DATA / "alpaca_eval" / "leaderboard.csv", index_col=0).loc[model]


@needs_data
@pytest.mark.parametrize("where", ["one segment", "two levels deep"])
def test_a_replayed_published_run_is_reported_with_n_se_and_avg_length(
    together_moa: Path, tmp_path: Path, where: str
) -> None:
    """It was two levels deep (`single_replay/Together-MoA@scripted`) and vanished from the
    report and the browser; with `moa.name=` it was a bare win rate."""
    runs = tmp_path / "runs"
    shutil.copytree(together_moa / "runs", runs)
    name = "single_replay_Together-MoA@scripted"
    if where == "two levels deep":  # as runs made before names were one segment lie
        nested = runs / "alpaca_eval" / "single_replay" / "Together-MoA@scripted"
        nested.parent.mkdir()
        (runs / "alpaca_eval" / name).rename(nested)
        name = "single_replay/Together-MoA@scripted"
    report = report_of(tmp_path)
    (row,) = pd.read_csv(report / "other_alpaca_eval.csv").to_dict("records")
    board = leaderboard("Together-MoA")
    assert row["run"] == name and row["aggregator"] == "replay/Together-MoA"
    assert row["n"] == 805 and row["avg_length"] == board["avg_length"] == 1825
    assert row["standard_error"] > 0 and row["ci_low"] < row["win_rate"] < row["ci_high"]
    assert row["provider"] == "replay" and row["judge"] == "scripted/gpt-4-1106-preview"
    metrics = json.loads(next(runs.rglob("metrics.json")).read_text(encoding="utf-8"))
    assert metrics["avg_length"] == 1825  # metrics.json carries it, as the leaderboard does

    site = build_site(runs, tmp_path / "site", Data(str(SHARED_DATA)))
    assert site.skipped == [] and site.built == [f"alpaca_eval/{name}"]
    html = site.index.read_text(encoding="utf-8")
    assert f'data-run="alpaca_eval/{name}"' in html
    link = f"#alpaca_eval/{quote(name, safe='')}"
    assert f'href="{link}"' in html
    if browser.available():  # the link opens the run's instances, and one of them
        with browser.chromium() as page:
            browser.open_view(page, site.index.as_uri() + link)
            assert page.execute_script("return document.body.dataset.view") == "run"
            browser.go(page, f"{link}/0")
            assert page.execute_script("return document.body.dataset.view") == "instance"
            assert browser.errors(page) == []


# --- 5. a stand-in is named as one, and free endpoints are free -----------------------------


def test_a_stand_in_is_named_and_free_in_a_prompt_run(tmp_path: Path) -> None:
    """`provider_override=local` showed SmolLM2's answer as `local/Qwen/Qwen1.5-110B-Chat` and
    priced it at Qwen's rate."""
    done = run([MOA_BENCH, "prompt=Hi", "moa=single", "provider_override=local",
                "benchmark.generation.max_tokens=8", f"results_dir={tmp_path / 'runs'}",
                f"cache.path={tmp_path / 'c.sqlite'}"], timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    printed = " ".join(done.stdout.split())
    assert "output: smollm2 (standing in for qwen1.5-110b)" in printed
    assert "$0.00 paid; free endpoints (local) cost nothing" in printed
    assert "Qwen1.5-110B-Chat" not in printed and "catalogue prices" not in printed


@needs_data
def test_the_plan_names_a_stand_in_and_prices_it_free(tmp_path: Path) -> None:
    cfg = scripted_config(tmp_path, "provider_override=local", "task=plan",
                          "benchmark=alpaca_eval", "benchmark.limit=2", "moa=moa_lite")  # fmt: skip
    ((_, result),) = asyncio.run(plan_points(resolve(cfg), [resolve(cfg)]))
    (variant,) = result.variants
    assert result.judge == "local/gpt-4-1106-preview: smollm2 (standing in for gpt-4-turbo)"
    assert variant.usd == 0.0 and result.judge_usd == 0.0
    # its size is SmolLM2's: 135M active parameters, not 110B
    assert 0 < variant.tflops < 1


@needs_data
def test_the_report_and_the_browser_name_a_stand_in_and_price_it_free(tmp_path: Path) -> None:
    """A run whose endpoint is `local`, as its files record it (here the scripted fake's
    endpoint, recorded as `local`: the report reads what a run recorded)."""
    scripted_runs(tmp_path, [("benchmark=alpaca_eval", "benchmark.limit=2", "moa=single")])
    (folder,) = (tmp_path / "runs" / "alpaca_eval").iterdir()
    config = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
    config["endpoints"]["scripted"]["provider"] = "local"
    (folder / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    (row,) = pd.read_csv(report_of(tmp_path) / "table2a_alpaca_eval.csv").to_dict("records")
    assert row["provider"] == "scripted (smollm2 standing in for the named models)"
    assert row["judge"] == ("scripted/gpt-4-1106-preview: smollm2 (standing in for gpt-4-turbo)")
    assert row["cost_per_instance_usd"] == 0.0  # not Qwen1.5-110B-Chat's price
    assert 0 < row["tflops_per_instance"] < 1  # nor its size

    site = build_site(tmp_path / "runs", tmp_path / "site", Data(str(SHARED_DATA)))
    html = site.index.read_text(encoding="utf-8")
    assert "smollm2 standing in for the named models" in html
    assert "smollm2 (standing in for gpt-4-turbo)" in html
    chunk = next((tmp_path / "site" / "data").glob("*/c0.js")).read_text(encoding="utf-8")
    assert '"answered by":"smollm2 (standing in for qwen1.5-110b)"' in chunk
