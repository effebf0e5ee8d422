"""The report reads like the paper: Table 2a holds only the paper's variants and baselines, the
ablations and the aggregators on the published proposals have tables of their own, every table
says over how many instances and which runs cover a subset, cells are numbers or empty, the
plots say LC only when it was computed, keep their labels apart at the scale of the whole suite,
and the report folder is rebuilt, with one index page linking every file."""

from __future__ import annotations

import asyncio
import csv
import itertools
import json
import math
import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from eval import paper_rows
from eval.cli import dispatch
from eval.judges.flask import SKILL_ORDER
from eval.records import AgentRecord, RunIdentity
from eval.report import paper, plots
from eval.report.build import MARKER, write_report
from eval.report.markdown import markdown
from eval.report.metric import alpaca_metric
from eval.report.paper_tables import figure3_skills, table2a
from eval.runs import Run, load_runs
from moa.errors import ConfigError
from tests.kit.cli import scripted_config as config

from .conftest import SHARED_DATA

pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")


ALPACA = ("benchmark=alpaca_eval", "benchmark.limit=3")
SUITE = [
    (*ALPACA, "moa=moa"),
    (*ALPACA, "moa=moa_lite"),
    (*ALPACA, "moa=single", "moa.aggregator=qwen1.5-110b"),
    (*ALPACA, "moa=single", "moa.aggregator=dbrx"),  # the paper leaves it out; the board has it
    (*ALPACA, "moa=multi_proposer", "moa.n=2"),  # Table 3
    (*ALPACA, "moa=as_aggregator", "moa.model=dbrx"),  # Table 4
    (*ALPACA, "moa=llm_ranker", "moa.layers=2", "moa.name=fig4_rank_l2"),  # Figure 4
    (*ALPACA, "moa=published_proposers"),  # aggregators on the published proposals
    (*ALPACA, "moa=published_proposers", "moa.aggregator=qwen1.5-72b"),
    (*ALPACA, "moa=single", "moa.aggregator=gpt-4o", "moa.name=mine"),  # in no paper table
    ("benchmark=mt_bench", "benchmark.limit=2", "moa=moa"),
    ("benchmark=mt_bench", "benchmark.limit=2", "moa=multi_proposer", "moa.n=2"),
    ("benchmark=flask", "benchmark.limit=2", "moa=moa"),
    ("benchmark=flask", "benchmark.limit=2", "moa=single"),
    ("benchmark=flask", "benchmark.limit=2", "moa=single_gpt4o"),
]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small suite of judged runs on the scripted fake: every table's kind of run."""
    root = tmp_path_factory.mktemp("suite")
    for overrides in SUITE:
        assert asyncio.run(dispatch(config(root, *overrides))) == 0
    return root / "runs"


@pytest.fixture(scope="module")
def report(results: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report"
    assert write_report(results, out).skipped == []
    return out


def csv_of(report: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(report / f"{name}.csv", keep_default_na=True)


def raw_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def scores(run_dir: Path) -> dict[str, float]:
    """Per instruction, as the report scores it: win 100, tie 50, loss 0 (fractional)."""
    rows = json.loads((run_dir / "annotations.json").read_text(encoding="utf-8"))
    return {r["instruction"]: (r["preference"] - 1) * 100 for r in rows}


# --- the tables ------------------------------------------------------------------------------


def test_table2a_holds_only_the_papers_variants_and_baselines(report: Path) -> None:
    table = csv_of(report, "table2a_alpaca_eval").set_index("run")
    assert list(table.index) == [
        "moa@scripted~first3",
        "moa_lite@scripted~first3",
        "single_qwen1.5-110b@scripted~first3",
        "single_dbrx@scripted~first3",
    ]  # the paper's order; no ablation, no published or other run
    assert list(table["model"]) == ["MoA", "MoA-Lite", "Qwen1.5 110B Chat", "dbrx-instruct"]
    assert table.loc["moa@scripted~first3", "paper_lc"] == 65.1
    assert table.loc["moa@scripted~first3", "paper_lc_std"] == 0.6
    # the paper leaves dbrx-instruct out: the AlpacaEval leaderboard's values stand beside it
    dbrx = table.loc["single_dbrx@scripted~first3"]
    assert pd.isna(dbrx["paper_lc"]) and pd.isna(dbrx["paper_win_rate"])
    assert (dbrx["leaderboard_lc"], dbrx["leaderboard_win_rate"]) == (25.38, 18.45)

    # the ablations went to their own tables
    table3 = csv_of(report, "table3_num_proposers")
    assert table3["runs"].tolist() == ["multiple: multi_proposer_n2@scripted~first3"]
    table4 = csv_of(report, "table4_roles").set_index("model")
    assert table4.loc["dbrx", "runs"] == "as_aggregator: as_aggregator_dbrx@scripted~first3"
    ranker = csv_of(report, "figure4_ranker").set_index("layers")
    assert ranker.loc[2, "runs"] == "rank: fig4_rank_l2@scripted~first3"
    assert ranker.loc[3, "runs"] == "aggregate: moa@scripted~first3"  # MoA is 3 layers of six
    # the paper's tables' values for Figure 4's configurations, raw like ours (LC is offline)
    assert ranker.loc[1, "paper_aggregate"] == 33.8 and ranker.loc[3, "paper_aggregate"] == 59.8
    other = csv_of(report, "other_alpaca_eval")
    assert other["run"].tolist() == ["mine@scripted~first3"]  # no run is left out
    assert other["win_rate"].notna().all() and other["aggregator"].tolist() == ["gpt-4o"]
    paired = csv_of(report, "paired_alpaca_eval")
    assert not paired["run"].str.startswith("published_").any()
    # MT-Bench's Table 2b likewise: the ablation run goes to "other"
    assert csv_of(report, "table2b_mt_bench")["run"].tolist() == ["moa@scripted~first2"]
    assert csv_of(report, "other_mt_bench")["run"].tolist() == ["multi_proposer_n2@scripted~first2"]


def test_avg_length_is_alpaca_evals(results: Path, report: Path) -> None:
    """alpaca-eval's leaderboard column: int(mean length in characters of model_outputs)."""
    table = csv_of(report, "table2a_alpaca_eval").set_index("run")
    for run in table.index:
        rows = json.loads((results / "alpaca_eval" / run / "model_outputs.json").read_text())
        assert table.loc[run, "avg_length"] == int(np.mean([len(r["output"]) for r in rows]))


def test_published_aggregators_are_paired_against_a_reference(
    results: Path, report: Path, tmp_path: Path
) -> None:
    base, other = "published_qwen1.5-110b@scripted~first3", "published_qwen1.5-72b@scripted~first3"
    table = csv_of(report, "published_aggregators").set_index("run")
    assert list(table.index) == [base, other]  # the paper's aggregator first
    assert list(table["aggregator"]) == ["qwen1.5-110b", "qwen1.5-72b"]
    # report.reference=moa is no published run: the first is the reference
    assert table.loc[base, "minus"] == "(reference)" and pd.isna(table.loc[base, "difference"])
    mine, theirs = scores(results / "alpaca_eval" / other), scores(results / "alpaca_eval" / base)
    expected = np.mean([mine[k] - theirs[k] for k in mine])
    row = table.loc[other]
    assert row["minus"] == base and row["n_paired"] == 3
    assert row["difference"] == pytest.approx(expected)
    assert row["diff_ci_low"] <= row["difference"] <= row["diff_ci_high"]
    assert "diff 95% CI" in (report / "published_aggregators.md").read_text()

    flipped = tmp_path / "flipped"
    write_report(results, flipped, reference="published_qwen1.5-72b")
    table = csv_of(flipped, "published_aggregators").set_index("run")
    assert table.loc[other, "minus"] == "(reference)"
    assert table.loc[base, "minus"] == other
    assert table.loc[base, "difference"] == pytest.approx(-expected)


def test_every_table_has_n_and_marks_its_subsets(report: Path) -> None:
    names = {p.stem for p in report.glob("*.csv")}
    assert {"table2a_alpaca_eval", "table2b_mt_bench", "flask_skills", "table3_num_proposers",
            "table4_roles", "figure4_ranker", "published_aggregators", "paired_alpaca_eval",
            "other_alpaca_eval", "paired_mt_bench", "other_mt_bench",
            "paired_flask"} <= names  # fmt: skip
    for name in names:
        frame = csv_of(report, name)
        counts = [c for c in frame.columns if c == "n" or c.endswith("_n")]
        assert counts, name
        filled = frame[counts].stack().dropna()
        assert len(filled) and (filled > 0).all(), name
        assert "subset" in frame.columns, name
        assert frame["subset"].str.startswith("first").all(), name  # every run here is a subset
    table2b = csv_of(report, "table2b_mt_bench")
    assert table2b["n"].tolist() == [4] and table2b["subset"].tolist() == ["first2"]  # 2 x 2 turns


def _run(name: str, selection: dict[str, object] | None, n: int, **metrics: object) -> Run:
    variant = re.split(r"[@~#]", name)[0]
    identity = RunIdentity("alpaca_eval", variant, [], AgentRecord("scripted/m", 0, "aggregate"),
                           "aggregate", {},
                           selection)  # fmt: skip
    values = {"judge": "openai/gpt-4-1106-preview", "complete": True, **metrics}
    layers, aggregator = paper_rows.configuration(variant) or ([], "m")
    run = Run("alpaca_eval", name, identity, Path("/nonexistent"), values,
                     layer_models=layers, aggregator=aggregator,
                     scores={str(i): 100.0 * (i % 2) for i in range(n)})  # fmt: skip
    run.headline = float(str(metrics.get("win_rate", math.nan)))
    return run


def test_a_whole_run_has_an_empty_subset_and_a_subset_is_named() -> None:
    runs = [
        _run("moa", None, 805, win_rate=60.0),
        _run("moa~first30", {"limit": 30}, 30, win_rate=55.0),
        _run("moa_lite~coding+math~first5", {"categories": ["math", "coding"], "limit": 5}, 5),
    ]
    frame = table2a(runs)
    assert frame["subset"].fillna("").tolist() == ["", "first30", "coding+math~first5"]
    assert frame["n"].tolist() == [805, 30, 5]


def test_cells_are_numbers_integers_or_empty_never_nan(report: Path) -> None:
    integer = re.compile(r"^-?\d+$")
    for path in [*report.glob("*.csv"), *report.glob("*.md")]:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"\bnan\b|\bNaN\b|<NA>|\bNone\b", text), path.name
    for name, columns in {
        "table2a_alpaca_eval": ["n", "avg_length"],
        "table3_num_proposers": ["n_proposers", "multiple_n"],
        "figure4_ranker": ["layers", "aggregate_n", "rank_n"],
        "published_aggregators": ["n", "avg_length"],
        "paired_alpaca_eval": ["n", "n_paired"],
        "flask_skills": ["n"],
    }.items():
        for row in raw_rows(report / f"{name}.csv"):
            for column in columns:
                assert row[column] == "" or integer.match(row[column]), (name, column, row)
    # the empty cells are empty: the LC columns (offline), Figure 4's missing cells
    table2a = raw_rows(report / "table2a_alpaca_eval.csv")
    assert {r["lc_win_rate"] for r in table2a} == {""}
    ranker = {r["layers"]: r for r in raw_rows(report / "figure4_ranker.csv")}
    assert ranker["2"]["aggregate"] == "" and ranker["2"]["aggregate_n"] == ""
    markdown = (report / "table2a_alpaca_eval.md").read_text()
    row = "| moa@scripted~first3 | MoA | scripted/gpt-4-1106-preview | scripted | first3 | 3 | yes |  |  |"  # noqa: E501
    assert row in markdown


def test_a_confidence_interval_is_two_numeric_columns(report: Path, results: Path) -> None:
    table = csv_of(report, "table2a_alpaca_eval").set_index("run")
    assert table["ci_low"].dtype == float and table["ci_high"].dtype == float
    for run, row in table.iterrows():
        mean = np.mean(list(scores(results / "alpaca_eval" / str(run)).values()))
        assert row["ci_low"] <= mean <= row["ci_high"]
    markdown = (report / "table2a_alpaca_eval.md").read_text()
    low, high = table.loc["moa@scripted~first3", ["ci_low", "ci_high"]]
    assert "95% CI" in markdown and f"[{low:.2f}, {high:.2f}]" in markdown
    (header,) = [line for line in markdown.splitlines() if line.startswith("| run |")]
    assert "95% CI" in header and "ci_low" not in header  # one column in Markdown


def test_repeats_of_one_configuration_are_mean_and_std() -> None:
    """Several runs of one variant that differ only in their repeat index are one row."""
    runs = [_run(f"moa#{i}", None, 10, win_rate=w) for i, w in enumerate((60.0, 62.0, 64.0))]
    for i, run in enumerate(runs):
        run.repeat = i
    runs.append(_run("moa_lite", None, 10, win_rate=50.0))
    frame = table2a(runs)
    assert len(frame) == 2
    moa = frame.iloc[0]
    assert (moa["repeats"], moa["win_rate"], moa["win_rate_std"]) == (3, 62.0, 2.0)
    assert moa["n"] == 10 and frame.iloc[1]["repeats"] == 1
    assert "62.00 ± 2.00" in markdown(frame)


# --- the plots -------------------------------------------------------------------------------


def test_an_axis_says_lc_only_when_lc_was_computed(results: Path) -> None:
    runs, _ = load_runs(results)
    alpaca = [r for r in runs if r.benchmark == "alpaca_eval"]
    metric = alpaca_metric(alpaca)  # offline: LC could not be computed
    assert not metric.lc and metric.key == "win_rate"
    fig, _ = plots.pareto_figure(alpaca, "cost_per_instance", "USD per instance", metric)
    label = fig.axes[0].get_ylabel()
    assert "raw" in label and "not length-controlled" in label and "LC unavailable" in label
    reason = str(alpaca[0].metrics["lc_unavailable"])
    assert " ".join(label.split()).endswith(reason)  # why, wrapped
    # the paper's points beside ours are the same kind of number: Table 2a's raw win rate
    (paper,) = [c for c in fig.axes[0].collections if "Table 2a" in str(c.get_label())]
    assert sorted(np.asarray(paper.get_offsets())[:, 1].tolist()) == [33.8, 57.0, 59.8]

    with_lc = [_run("moa", None, 10, win_rate=60.0, length_controlled_winrate=65.0)]
    metric = alpaca_metric(with_lc)
    assert metric.lc
    with_lc[0].cost_per_instance = 0.03
    fig, _ = plots.pareto_figure(with_lc, "cost_per_instance", "USD per instance", metric)
    assert fig.axes[0].get_ylabel() == "AlpacaEval 2.0 LC win rate (%)"
    (paper,) = [c for c in fig.axes[0].collections if "Table 2a" in str(c.get_label())]
    assert np.asarray(paper.get_offsets())[:, 1].tolist() == [65.1]  # the paper's LC
    # one run without LC among others with it: the raw win rate for all, said so
    mixed = [*with_lc, _run("moa_lite", None, 10, win_rate=50.0, lc_unavailable="offline")]
    metric = alpaca_metric(mixed)
    assert not metric.lc and metric.missing == "1 of 2 runs: offline"


def test_titles_name_the_benchmark_the_judge_and_n(results: Path) -> None:
    runs, _ = load_runs(results)
    flask = [r for r in runs if r.benchmark == "flask"]
    assert plots.describe("FLASK", flask) == (
        "FLASK, judge scripted/gpt-4-0613, n = 2 (subset: first2)"
    )
    mixed = [_run("a", None, 805), _run("b~first30", {"limit": 30}, 30)]
    assert plots.describe("AlpacaEval 2.0", mixed) == (
        "AlpacaEval 2.0, judge openai/gpt-4-1106-preview, n = 30 to 805 (subset: first30)"
    )


def _suite_runs(count: int) -> list[Run]:
    """`count` runs crowded as the whole suite's are: most in a small corner, several on one
    point, the paper's variants among them, and one without a price."""
    rng = np.random.default_rng(0)
    runs = []
    for i in range(count):
        variant = (
            list(paper_rows.TABLE2_ROWS)[i] if i < len(paper_rows.TABLE2_ROWS) else f"sweep_{i}"
        )
        x = 0.001 if i % 6 == 0 else 0.001 + float(rng.random()) * 0.0004
        run = _run(f"{variant}@scripted~first30", {"limit": 30}, 30,
                   win_rate=40.0 + float(rng.random()) * 4)  # fmt: skip
        run.cost_per_instance, run.tflops_per_instance = x, x * 1e5
        runs.append(run)
    runs[-1].cost_per_instance = math.nan
    return runs


@pytest.mark.parametrize("attribute", ["cost_per_instance", "tflops_per_instance"])
def test_no_two_labels_of_a_budget_plot_overlap_with_40_runs(attribute: str) -> None:
    runs = _suite_runs(41)
    fig, notes = plots.pareto_figure(runs, attribute, "USD per instance", title="Figure 5\nsub")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    ax = fig.axes[0]
    labels = list(ax.texts)
    if attribute == "cost_per_instance":
        assert sorted(int(t.get_text()) for t in labels) == list(range(1, 41))  # numbered
        assert notes == [f"Not drawn: {runs[-1].name} (no price for one of its models)."]
    texts = [*labels, *fig.texts, ax.title, ax.xaxis.label, ax.yaxis.label]
    boxes = [t.get_window_extent(renderer) for t in texts if t.get_text()]
    overlaps = [
        (texts[i].get_text()[:20], texts[j].get_text()[:20])
        for i, j in itertools.combinations(range(len(boxes)), 2)
        if boxes[i].overlaps(boxes[j])
    ]
    assert overlaps == []
    key = "\n".join(t.get_text() for t in fig.texts)
    # the key below lists every point (a long name cut in the middle, its subset mark kept)
    assert all(r.name[:12] in key and r.name[-14:] in key for r in runs[:-1])
    if attribute == "cost_per_instance":
        assert "Not drawn" in key and runs[-1].name in key  # and the run left out
    plt.close(fig)


def test_layer_ticks_are_integers_and_the_papers_curve_is_drawn(report: Path) -> None:
    table = csv_of(report, "figure4_ranker")
    fig = plots.ranker_figure(table, title="Figure 4(a)\nAlpacaEval 2.0")
    fig.canvas.draw()
    ax = fig.axes[0]
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks == [1.0, 2.0, 3.0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert any(str(label).startswith("paper") for label in labels)
    plt.close(fig)
    index = (report / "index.md").read_text()
    assert "LLM-ranker curve is not tabulated in the paper: not drawn" in index


def test_a_series_with_no_point_has_no_legend_entry_and_ticks_are_whole_layers() -> None:
    table = pd.DataFrame(
        {"layers": [2, 3, 4], "aggregate": [np.nan] * 3, "rank": [40.0, 45.0, 50.0],
         "paper_aggregate": [np.nan, 59.8, np.nan]}
    )  # fmt: skip
    fig = plots.ranker_figure(table, title="Figure 4(a)")
    fig.canvas.draw()
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert plots.RANKER_LABELS["rank"] in legend
    assert plots.RANKER_LABELS["aggregate"] not in legend  # not drawn: not in the legend
    assert [float(t) for t in ax.get_xticks()] == [2.0, 3.0, 4.0]
    plt.close(fig)


def test_the_flask_radar_is_figure_3_with_all_12_skills(results: Path) -> None:
    runs, _ = load_runs(results)
    flask = [r for r in runs if r.benchmark == "flask"]
    skills, drawn, notes = figure3_skills(flask)
    assert list(skills.columns) == list(SKILL_ORDER) and len(SKILL_ORDER) == 12
    assert [label.split(" (")[0] for label in skills.index] == [
        "MoA", "Qwen1.5-110B-Chat", "GPT-4o",
    ]  # fmt: skip
    assert {r.variant for r in drawn} == {"moa", "single_qwen1.5-110b", "single_gpt-4o"}
    fig = plots.radar_figure(skills, title="Figure 3: FLASK skills", notes=notes)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == list(SKILL_ORDER)
    assert ax.get_title() == "Figure 3: FLASK skills"
    plt.close(fig)


# --- the report folder -----------------------------------------------------------------------


def test_the_index_links_every_file(report: Path) -> None:
    index = (report / "index.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\(([^)\s]+)\)", index))
    files = {p.name for p in report.iterdir() if p.name not in ("index.md", MARKER)}
    assert files and linked == files
    assert {"figure5_cost.png", "figure5_tflops.png", "figure4_ranker.png",
            "flask_radar.png"} <= files  # fmt: skip
    assert "![figure5_cost](figure5_cost.png)" in index


def test_a_rebuild_removes_stale_files_and_nothing_else(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    write_report(results, out)
    first = {p.name for p in out.iterdir()}
    # files put beside the report afterwards are not its own, whatever their names
    (out / "sub").mkdir()
    kept = ["notes.txt", "mine.md", "plot.png", "sub/paired.csv"]
    for name in kept:
        (out / name).write_text("x", encoding="utf-8")
    (out / ".table2a_alpaca_eval.csv.999999999.abc.tmp").write_text("x")  # a killed write's

    # an earlier report against another reference leaves nothing of its own behind: no run of
    # moa_lite on MT-Bench or FLASK, so no paired table of theirs, old or new
    write_report(results, out, reference="moa_lite")
    gone = {f"{table}_{bench}.{suffix}" for table in ("paired", "tests")
            for bench in ("mt_bench", "flask") for suffix in ("csv", "md")}  # fmt: skip
    assert gone <= first
    assert all((out / name).read_text() == "x" for name in kept)
    assert {p.name for p in out.iterdir()} == (first - gone) | {"notes.txt", "mine.md",
                                                                "plot.png", "sub"}  # fmt: skip
    paired = csv_of(out, "paired_alpaca_eval")
    assert set(paired["minus"]) == {"moa_lite@scripted~first3"}
    assert not list(out.glob(".*.tmp"))


def test_a_folder_that_is_not_a_report_is_refused(results: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("", encoding="utf-8")
    (project / "README.md").write_text("keep", encoding="utf-8")
    with pytest.raises(ConfigError, match="not a report folder"):
        write_report(results, project)
    assert (project / "README.md").read_text() == "keep"
    with pytest.raises(ConfigError, match="not a report folder"):
        write_report(results, paper.PAPER_DIR)
