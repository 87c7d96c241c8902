"""The experiment report on synthetic run folders whose statistics are known in advance."""

from __future__ import annotations

import csv
import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from reengage.experiment.__main__ import main as experiment_main
from reengage.experiment.report import ReportError, build_report, mean_ci, steps_label, write_report

STEPS = [1000, 2000, 3000, 4000]
ENV = "reengage/ContinuousSeek5-v0"
ENV2 = "reengage/ContinuousSeek10-v0"


def write_run(
    root: Path,
    env_id: str,
    variant: str,
    point: dict,
    seed: int,
    values: list[float],
    column: str = "eval/success_rate",
    done: bool = True,
    in_manifest: list | None = None,
) -> None:
    run_id = (
        f"{env_id.split('/')[-1]}/{variant}/{'-'.join(f'{k}{v}' for k, v in point.items()) or 'x'}/s{seed}_0000000000"
    )
    run_dir = root / "runs" / run_id
    run_dir.mkdir(parents=True)
    identity = {
        "run_id": run_id,
        "env_id": env_id,
        "variant": variant,
        "algo": "ddpg",
        "alpha": 0.0,
        "point": point,
        "seed": seed,
        "config_hash": "0000000000",
    }
    (run_dir / "run.json").write_text(json.dumps(identity))
    with open(run_dir / "evaluations.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["step", column, "eval/mean_reward"])
        writer.writeheader()
        for step, value in zip(STEPS, values):
            writer.writerow({"step": step, column: value, "eval/mean_reward": -5.0})
    if done:
        (run_dir / "status.json").write_text(json.dumps({"status": "done"}))
    if in_manifest is not None:
        in_manifest.append(identity)


def write_manifest(root: Path, runs: list, variants: list[str], baseline: str) -> None:
    manifest = {"name": "synthetic", "baseline": baseline, "success_threshold": 0.5, "variants": variants, "runs": runs}
    (root / "experiment.json").write_text(json.dumps(manifest))


@pytest.fixture()
def grid_results(tmp_path: Path) -> Path:
    """Two variants x two learning rates x 5 seeds; 'new' at lr 0.01 is best, and better than 'base'."""
    runs: list = []
    for seed in range(5):
        level = 0.1 * seed  # seeds differ by a known amount
        # base: lr 0.001 has AUC 0.1 + level; lr 0.01 has AUC 0.2 + level (the better setting)
        write_run(tmp_path, ENV, "base", {"lr": 0.001}, seed, [0.1 + level] * 4, in_manifest=runs)
        write_run(
            tmp_path,
            ENV,
            "base",
            {"lr": 0.01},
            seed,
            [0.0 + level, 0.0 + level, 0.4 + level, 0.4 + level],
            in_manifest=runs,
        )
        # new: lr 0.01 is best (AUC 0.5 + level) and reaches 0.5 at step 2000 + ...
        write_run(tmp_path, ENV, "new", {"lr": 0.001}, seed, [0.3 + level] * 4, in_manifest=runs)
        write_run(
            tmp_path,
            ENV,
            "new",
            {"lr": 0.01},
            seed,
            [0.2 + level, 0.4 + level, 0.6 + level, 0.8 + level],
            in_manifest=runs,
        )
    write_manifest(tmp_path, runs, ["base", "new"], "base")
    return tmp_path


def bootstrap_mean_ci(values: np.ndarray, reps: int = 20000) -> tuple[float, float]:
    """An independent percentile bootstrap of the mean (numpy only) to check rliable's interval against."""
    rng = np.random.default_rng(123)
    means = rng.choice(values, size=(reps, len(values)), replace=True).mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def test_best_setting_means_and_cis_match_the_known_values(grid_results: Path) -> None:
    summary = build_report(grid_results, reps=2000)
    best = {(e["variant"], e["point"]["lr"]) for e in summary["grid"] if e["best"]}
    assert best == {("base", 0.01), ("new", 0.01)}
    rows = {row["variant"]: row for row in summary["results"]}
    levels = 0.1 * np.arange(5)
    # base at lr 0.01: final = 0.4 + level -> mean 0.6; AUC = 0.2 + level -> mean 0.4
    assert rows["base"]["final"][0] == pytest.approx(0.6)
    assert rows["base"]["auc"][0] == pytest.approx(0.4)
    assert rows["new"]["final"][0] == pytest.approx(1.0)
    assert rows["new"]["auc"][0] == pytest.approx(0.7)
    low, high = bootstrap_mean_ci(0.4 + levels)
    assert rows["base"]["final"][1] == pytest.approx(low, abs=0.03)
    assert rows["base"]["final"][2] == pytest.approx(high, abs=0.03)
    assert rows["base"]["final"][1] < 0.6 < rows["base"]["final"][2]
    # steps to 0.5: new reaches it at 3000, 2000, 2000, 1000, 1000 (seeds 0..4) -> mean 1800, all reach it
    assert rows["new"]["steps_to_threshold"][0] == pytest.approx(1800)
    assert rows["new"]["reached_threshold"] == 5
    # base (0.0+l, 0.0+l, 0.4+l, 0.4+l) reaches 0.5 at 3000 for seeds 1..4; seed 0 never (censored at 4000)
    assert rows["base"]["steps_to_threshold"][0] == pytest.approx((4000 + 3000 * 4) / 5)
    assert rows["base"]["reached_threshold"] == 4


def test_a_fixed_setting_replaces_the_best_one_in_results_differences_and_markdown(
    grid_results: Path, capsys: pytest.CaptureFixture
) -> None:
    """--setting new lr=0.001: 'new' is reported and compared at lr 0.001 (AUC 0.3 + level, mean 0.5), the
    baseline stays at its best (lr 0.01, AUC mean 0.4); the highest-AUC flag is kept apart from what is reported."""
    summary = build_report(grid_results, reps=500, settings={"new": "lr=0.001"})
    rows = {row["variant"]: row for row in summary["results"]}
    assert rows["new"]["point"] == {"lr": 0.001} and rows["base"]["point"] == {"lr": 0.01}
    assert rows["new"]["auc"][0] == pytest.approx(0.5) and rows["new"]["final"][0] == pytest.approx(0.5)
    auc = next(d for d in summary["differences"] if d["metric"] == "auc")
    assert auc["difference"][0] == pytest.approx(0.1)  # 0.5 - 0.4, not the best-vs-best 0.3
    reported = {(e["variant"], e["point"]["lr"]) for e in summary["grid"] if e["reported"]}
    highest = {(e["variant"], e["point"]["lr"]) for e in summary["grid"] if e["best"]}
    assert reported == {("base", 0.01), ("new", 0.001)} and highest == {("base", 0.01), ("new", 0.01)}
    assert summary["fixed_settings"] == {"new": "lr=0.001"}
    out = grid_results / "fixed"
    assert (
        experiment_main(
            ["report", str(grid_results), "--out", str(out), "--reps", "200", "--setting", "new", "lr=0.001"]
        )
        == 0
    )
    markdown = (out / "report.md").read_text()
    assert "fixed by --setting for new" in markdown and "| new | lr=0.001 | 5 |" in markdown
    assert "**fixed**" in markdown and "each variant at the setting marked above" in markdown
    # an unknown variant or setting: exit 2 naming the valid ones, nothing written
    capsys.readouterr()
    assert (
        experiment_main(
            ["report", str(grid_results), "--out", str(grid_results / "bad"), "--setting", "newer", "lr=0.001"]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "'newer'" in err and "variants: base, new" in err
    assert (
        experiment_main(["report", str(grid_results), "--out", str(grid_results / "bad"), "--setting", "new", "lr=0.1"])
        == 2
    )
    err = capsys.readouterr().err
    assert "'lr=0.1'" in err and "settings: lr=0.001, lr=0.01" in err
    assert not (grid_results / "bad").exists()


def test_iqm_drops_the_outer_quarters() -> None:
    # 5 seeds: the IQM (rliable's aggregate_iqm) is the mean of the middle three; the mean feels the outlier
    values = np.array([0.0, 0.1, 0.2, 0.3, 5.0])
    assert mean_ci(values, 500, "iqm")[0] == pytest.approx(0.2)
    assert mean_ci(values, 500, "mean")[0] == pytest.approx(1.12)
    point, low, high = mean_ci(np.full(6, 0.7), 500)
    assert point == low == high == pytest.approx(0.7)


def split_p_value(new: np.ndarray, base: np.ndarray) -> float:
    """Two-sided exact permutation p-value of the difference of means by plain enumeration of the splits."""
    pooled, observed = np.concatenate([new, base]), abs(new.mean() - base.mean())
    splits = [np.isin(np.arange(len(pooled)), chosen) for chosen in combinations(range(len(pooled)), len(new))]
    extreme = [abs(pooled[mask].mean() - pooled[~mask].mean()) >= observed - 1e-12 for mask in splits]
    return float(np.mean(extreme))


def test_difference_from_baseline_and_probability_of_improvement(grid_results: Path) -> None:
    summary = build_report(grid_results, reps=2000)
    auc = next(d for d in summary["differences"] if d["metric"] == "auc")
    assert auc["variant"] == "new"
    assert auc["seeds"] == "5 vs 5" and auc["seed_counts"] == [5, 5] and not auc["exploratory"]
    point, low, high = auc["difference"]
    assert point == pytest.approx(0.3)  # 0.7 - 0.4
    # the interval is Welch's t interval (scipy's, computed independently) and the p-value the exact permutation one
    new, base = 0.5 + 0.1 * np.arange(5), 0.2 + 0.1 * np.arange(5)
    welch = stats.ttest_ind(new, base, equal_var=False).confidence_interval(0.95)
    assert (low, high) == pytest.approx((welch.low, welch.high))
    assert auc["p_value"] == pytest.approx(split_p_value(new, base)) and auc["p_value"] < 0.05
    assert low > 0 and auc["excludes_zero"]
    # per seed 'new' beats 'base' by 0.3 but seeds overlap across variants: P(new > base) is known exactly
    expected = np.mean([(x > y) + 0.5 * (x == y) for x in new for y in base])
    improvement = auc["probability_of_improvement"]
    # (one exact tie, 0.5 against 0.5, may fall either way in floating point: 0.5/25 = 0.02)
    assert improvement["estimate"] == pytest.approx(expected, abs=0.021)
    assert improvement["estimate"] > 0.85 and improvement["seeds"] == "5 vs 5"
    # its p-value is the permutation Mann-Whitney test's (scipy's, on the AUCs as the report computes them, so
    # that the 0.5 against 0.5 tie falls the same way)
    levels = 0.1 * np.arange(5)
    new_auc = np.array([[0.2 + level, 0.4 + level, 0.6 + level, 0.8 + level] for level in levels]).mean(axis=1)
    base_auc = np.array([[0.0 + level, 0.0 + level, 0.4 + level, 0.4 + level] for level in levels]).mean(axis=1)
    mann_whitney = stats.mannwhitneyu(new_auc, base_auc, method=stats.PermutationMethod(n_resamples=np.inf))
    assert improvement["p_value"] == pytest.approx(mann_whitney.pvalue)


def test_identical_variants_give_a_difference_whose_ci_holds_zero(tmp_path: Path) -> None:
    runs: list = []
    for seed in range(4):
        values = [0.25 * seed] * 4
        write_run(tmp_path, ENV, "a", {}, seed, values, in_manifest=runs)
        write_run(tmp_path, ENV, "b", {}, seed, values, in_manifest=runs)
    write_manifest(tmp_path, runs, ["a", "b"], "a")
    summary = build_report(tmp_path, reps=1000)
    for entry in summary["differences"]:
        point, low, high = entry["difference"]
        assert point == 0 and low < 0 < high and not entry["excludes_zero"]
        assert entry["p_value"] == pytest.approx(1.0)
        assert entry["seeds"] == "4 vs 4" and entry["exploratory"]
        assert entry["probability_of_improvement"]["estimate"] == pytest.approx(0.5)
        assert entry["probability_of_improvement"]["p_value"] == pytest.approx(1.0)


def test_renamed_success_column_unfinished_and_stale_runs(tmp_path: Path) -> None:
    runs: list = []
    for seed in range(3):
        write_run(tmp_path, ENV, "a", {}, seed, [0.5] * 4, column="eval/success", in_manifest=runs)
        write_run(tmp_path, ENV2, "a", {}, seed, [1.0] * 4, column="eval/success", in_manifest=runs)
    write_run(tmp_path, ENV, "a", {}, 9, [0.0] * 4, column="eval/success", done=False, in_manifest=runs)
    write_run(tmp_path, ENV, "old", {}, 0, [0.0] * 4, column="eval/success")  # not in the manifest: ignored
    write_manifest(tmp_path, runs, ["a"], "a")
    summary = build_report(tmp_path, reps=500)
    assert summary["metric"] == "eval/success"
    assert [r["variant"] for r in summary["results"]] == ["a", "a"]
    assert summary["results"][0]["seeds"] == [0, 1, 2] and summary["results"][0]["final"][0] == 0.5
    assert len(summary["unfinished_runs"]) == 1 and "s9_" in summary["unfinished_runs"][0]
    # two environments with equal seed counts: the aggregate IQM over (seeds x envs) is rliable's
    aggregate = summary["aggregate_over_envs"][0]
    assert aggregate["iqm_final"][0] == pytest.approx(0.75)


def test_report_files_and_cli(grid_results: Path, capsys: pytest.CaptureFixture) -> None:
    assert experiment_main(["report", str(grid_results), "--reps", "500"]) == 0
    markdown = (grid_results / "report" / "report.md").read_text()
    assert "**best**" in markdown and "excludes 0 (Welch CI and p <= 0.05)" in markdown
    # 5 vs 5 seeds: a claim, named with its seed counts and p-value, not labelled exploratory
    assert "| new | auc | 5 vs 5 | 0.300 [0.069, 0.531] | 0.040 | yes (higher) | 0.88 (p = 0.056) |" in markdown
    assert "exploratory" not in markdown.split("## Difference from the baseline")[1]
    assert (grid_results / "report" / "curves.png").stat().st_size > 10_000
    assert json.loads((grid_results / "report" / "summary.json").read_text())["baseline"] == "base"


def test_the_files_metric_is_the_default_and_the_command_line_overrides_it(tmp_path: Path) -> None:
    runs: list = []
    for seed in range(2):
        write_run(tmp_path, ENV, "a", {}, seed, [0.5] * 4, in_manifest=runs)  # mean_reward is -5.0 everywhere
    write_manifest(tmp_path, runs, ["a"], "a")
    assert build_report(tmp_path, reps=200)["metric"] == "eval/success_rate"
    manifest = json.loads((tmp_path / "experiment.json").read_text())
    manifest["metric"] = "eval/mean_reward"
    (tmp_path / "experiment.json").write_text(json.dumps(manifest))
    from_file = build_report(tmp_path, reps=200)
    assert from_file["metric"] == "eval/mean_reward" and from_file["results"][0]["final"][0] == -5.0
    assert build_report(tmp_path, reps=200, metric="eval/success_rate")["metric"] == "eval/success_rate"


def test_report_bad_inputs_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert experiment_main(["report", str(tmp_path / "missing")]) == 2
    assert "not found" in capsys.readouterr().err
    write_run(tmp_path, ENV, "a", {}, 0, [0.5] * 4)
    assert experiment_main(["report", str(tmp_path), "--metric", "eval/nope"]) == 2
    err = capsys.readouterr().err
    assert "eval/nope" in err and "eval/success_rate" in err
    with pytest.raises(ReportError):
        write_report(tmp_path, metric="eval/nope")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    assert experiment_main(["report", str(a_file)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    # --out naming a file (or a path under one) is refused before anything is computed or written
    for out in (a_file, a_file / "report"):
        assert experiment_main(["report", str(tmp_path), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"--out {out}" in err and "give a folder path" in err
    assert a_file.read_text() == "not a folder"


def test_task_keys_compare_variants_within_each_task(tmp_path: Path) -> None:
    """A grid over env_kwargs defines tasks: each task keeps its own rows, none is picked as 'best'."""
    runs: list = []
    for seed in range(3):
        # task d=5: base 0.6, new 0.8; task d=15: base 0.4, new 0.0 (a best-setting pick would hide d=15)
        write_run(tmp_path, ENV, "base", {"env_kwargs": {"d": 5}}, seed, [0.6] * 4, in_manifest=runs)
        write_run(tmp_path, ENV, "new", {"env_kwargs": {"d": 5}}, seed, [0.8] * 4, in_manifest=runs)
        write_run(tmp_path, ENV, "base", {"env_kwargs": {"d": 15}}, seed, [0.4] * 4, in_manifest=runs)
        write_run(tmp_path, ENV, "new", {"env_kwargs": {"d": 15}}, seed, [0.0] * 4, in_manifest=runs)
    write_manifest(tmp_path, runs, ["base", "new"], "base")
    as_grid = build_report(tmp_path, reps=200)
    assert len(as_grid["results"]) == 2  # one row per variant: its best d
    summary = build_report(tmp_path, reps=200, task_keys=["env_kwargs"])
    rows = {(row["env_id"], row["variant"]): row["auc"][0] for row in summary["results"]}
    assert len(rows) == 4
    d15 = f'{ENV} [env_kwargs={{"d": 15}}]'
    assert rows[(d15, "new")] == pytest.approx(0.0) and rows[(d15, "base")] == pytest.approx(0.4)
    differences = {(e["env_id"], e["metric"]): e["difference"][0] for e in summary["differences"]}
    assert differences[(d15, "auc")] == pytest.approx(-0.4)
    with pytest.raises(ReportError, match="'box' are not grid keys.*grid keys: env_kwargs"):
        build_report(tmp_path, reps=200, task_keys=["box"])
    # the manifest's report.task_keys is the default
    manifest = json.loads((tmp_path / "experiment.json").read_text())
    manifest["task_keys"] = ["env_kwargs"]
    (tmp_path / "experiment.json").write_text(json.dumps(manifest))
    assert len(build_report(tmp_path, reps=200)["results"]) == 4
    assert (write_report(tmp_path, reps=200)).exists()


def test_task_keys_must_be_grid_keys() -> None:
    from reengage.experiment.spec import ExperimentError, expand_experiment

    raw = {
        "name": "t",
        "environments": ["reengage/ContinuousSeek5-v0"],
        "timesteps": 2000,
        "grid": {"learning_rate": [1e-3]},
        "variants": [{"name": "a", "algo": "ddpg"}],
        "report": {"task_keys": ["env_kwargs"]},
    }
    with pytest.raises(ExperimentError, match="task_keys.*grid keys: learning_rate"):
        expand_experiment(raw)
    raw["report"] = {"task_keys": ["learning_rate"]}
    assert expand_experiment(raw).task_keys == ["learning_rate"]


def test_reference_lines_are_drawn_and_listed(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # e.g. the greedy agent's return on DriveSeek / NoisySeek: a number no run of the folder produces
    runs: list = []
    for seed in range(3):
        write_run(tmp_path, ENV, "a", {}, seed, [0.2, 0.4, 0.5, 0.6], in_manifest=runs)
        write_run(tmp_path, ENV2, "a", {}, seed, [0.1, 0.2, 0.3, 0.3], in_manifest=runs)
    write_manifest(tmp_path, runs, ["a"], "a")
    plain, marked = tmp_path / "plain", tmp_path / "marked"
    assert experiment_main(["report", str(tmp_path), "--out", str(plain), "--reps", "200"]) == 0
    assert (
        experiment_main(
            [
                "report",
                str(tmp_path),
                "--out",
                str(marked),
                "--reps",
                "200",
                "--reference",
                f"{ENV}=0.75",
                "--reference-label",
                "greedy (nearest goal)",
            ]
        )
        == 0
    )
    report = (marked / "report.md").read_text()
    assert "| environment | greedy (nearest goal) |" in report and f"| {ENV} | 0.75 |" in report
    assert ENV2 + " |" not in report.split("greedy (nearest goal) |")[1]  # only the panel given a value
    summary = json.loads((marked / "summary.json").read_text())
    assert summary["references"] == {"label": "greedy (nearest goal)", "values": {ENV: 0.75}}
    assert "references" not in json.loads((plain / "summary.json").read_text())
    assert "greedy" not in (plain / "report.md").read_text()
    from PIL import Image

    with Image.open(plain / "curves.png") as without, Image.open(marked / "curves.png") as with_line:
        assert without.size == with_line.size
        assert not np.array_equal(np.asarray(without), np.asarray(with_line))  # the line is in the figure
    capsys.readouterr()
    for bad, named in (
        (
            ["--reference", "reengage/Nope-v0=1"],
            f"'reengage/Nope-v0' is not an environment of these runs; environments: {ENV}, {ENV2}",
        ),
        (["--reference", f"{ENV}=high"], f"--reference '{ENV}=high' must be ENV=VALUE"),
        (["--reference", "15.85"], "--reference '15.85' must be ENV=VALUE"),
    ):
        assert experiment_main(["report", str(tmp_path), "--out", str(tmp_path / "bad"), "--reps", "200", *bad]) == 2
        err = capsys.readouterr().err
        assert named in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("steps", "label"), [(0, "0"), (500, "500"), (2000, "2k"), (150_000, "150k"), (1_500_000, "1.5M")]
)
def test_step_ticks_are_short(steps: int, label: str) -> None:
    # six-digit tick labels overlapped on the d = 20 panel; the axis now reads 150k
    assert steps_label(steps) == label


def test_one_seed_gets_no_interval_and_no_claim_that_it_excludes_zero(tmp_path: Path) -> None:
    # a single-seed sweep (robotics_handreach_sweep.yaml): resampling one value gives [x, x], which must not be
    # printed as a confidence interval nor read as a difference that "excludes 0"
    runs: list = []
    write_run(tmp_path, ENV, "base", {}, 0, [0.1, 0.1, 0.2, 0.2], in_manifest=runs)
    write_run(tmp_path, ENV, "new", {}, 0, [0.2, 0.3, 0.3, 0.4], in_manifest=runs)
    write_run(tmp_path, ENV, "two", {}, 0, [0.2, 0.3, 0.3, 0.4], in_manifest=runs)
    write_run(tmp_path, ENV, "two", {}, 1, [0.3, 0.4, 0.4, 0.5], in_manifest=runs)
    write_manifest(tmp_path, runs, ["base", "new", "two"], "base")
    path = write_report(tmp_path, tmp_path / "out", reps=200)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    auc = {entry["variant"]: entry for entry in summary["differences"] if entry["metric"] == "auc"}
    assert auc["new"]["difference"] == [pytest.approx(0.15), None, None]
    assert auc["new"]["excludes_zero"] is False and auc["two"]["excludes_zero"] is False
    assert auc["two"]["difference"][1] is None  # the baseline has one seed: no interval for any difference
    rows = {row["variant"]: row for row in summary["results"]}
    assert rows["new"]["auc"] == [pytest.approx(0.3), None, None]
    assert rows["two"]["auc"][1] == pytest.approx(0.3) and rows["two"]["auc"][2] == pytest.approx(0.4)
    assert auc["new"]["p_value"] is None and auc["new"]["probability_of_improvement"]["p_value"] is None
    assert auc["new"]["seeds"] == "1 vs 1" and auc["two"]["seeds"] == "2 vs 1"
    markdown = path.read_text()
    assert "| new | auc | 1 vs 1 | 0.150 (1 seed, no CI) | - | exploratory (1 vs 1 seeds): no CI (1 seed) |" in markdown
    assert "yes (higher)" not in markdown
    assert "| two | 2 |" in markdown and "0.350 [0.300, 0.400]" in markdown


def test_few_seeds_are_exploratory_and_no_spread_leaves_the_claim_to_the_permutation_test(tmp_path: Path) -> None:
    """3 vs 3 seeds can never reach p <= 0.05 (smallest p 2/20); 4 vs 4 can (2/70) but is labelled exploratory;
    5 vs 5 seeds that never vary (0.0 against 1.0) have no Welch interval, and the exact p = 2/252 decides."""
    runs: list = []
    for seed in range(5):
        write_run(tmp_path, ENV, "base", {}, seed, [0.0] * 4, in_manifest=runs)
        write_run(tmp_path, ENV, "solved", {}, seed, [1.0] * 4, in_manifest=runs)
        if seed < 4:
            write_run(tmp_path, ENV, "four", {}, seed, [0.5 + 0.1 * seed] * 4, in_manifest=runs)
        if seed < 3:
            write_run(tmp_path, ENV, "three", {}, seed, [0.5 + 0.1 * seed] * 4, in_manifest=runs)
            write_run(tmp_path, ENV2, "base", {}, seed, [0.1 * seed] * 4, in_manifest=runs)
            write_run(tmp_path, ENV2, "three", {}, seed, [0.5 + 0.1 * seed] * 4, in_manifest=runs)
    write_manifest(tmp_path, runs, ["base", "solved", "four", "three"], "base")
    first = write_report(tmp_path, tmp_path / "first", reps=200)
    summary = json.loads((tmp_path / "first" / "summary.json").read_text())
    final = {(e["env_id"], e["variant"]): e for e in summary["differences"] if e["metric"] == "final"}
    solved = final[(ENV, "solved")]
    assert solved["difference"] == [1.0, None, None] and solved["p_value"] == pytest.approx(2 / 252)
    assert solved["excludes_zero"] and not solved["exploratory"]
    four = final[(ENV, "four")]
    assert four["seeds"] == "4 vs 5" and four["exploratory"] and four["excludes_zero"]
    three = final[(ENV2, "three")]
    assert three["seeds"] == "3 vs 3" and three["exploratory"] and not three["excludes_zero"]
    assert three["p_value"] == pytest.approx(0.1) and three["difference"][1] > 0  # the Welch CI alone excludes 0
    markdown = first.read_text()
    assert (
        f"| {ENV} | solved | final | 5 vs 5 | 1.000 (no spread in either group, no CI) | 0.008 | yes (higher) |"
        in markdown
    )
    assert (
        f"| {ENV} | four | final | 4 vs 5 |" in markdown and "| exploratory (4 vs 5 seeds): yes (higher) |" in markdown
    )
    assert "| exploratory (3 vs 3 seeds, too few for p <= 0.05): no |" in markdown
    differences = markdown.split("## Difference from the baseline")[1].split("##")[0]
    for line in differences.splitlines()[4:]:
        assert ("| yes (" not in line) or (" | 5 vs 5 | " in line), line  # a plain "yes" only at 5 seeds or more
    # the same folder gives the same bytes (exact enumeration, fixed seeds for random splits and bootstrap)
    second = write_report(tmp_path, tmp_path / "second", reps=200)
    assert second.read_bytes() == first.read_bytes()
    assert (tmp_path / "second" / "summary.json").read_bytes() == (tmp_path / "first" / "summary.json").read_bytes()


def test_evaluations_csv_no_longer_writes_the_old_success_column() -> None:
    from reengage.experiment.evaluation import LEGACY_SUCCESS, SUCCESS_EVER, EvaluationResult

    ones = np.ones(2)
    row = EvaluationResult(np.arange(2), ones, ones, -ones, 5 * ones).csv_row(100)
    assert row[SUCCESS_EVER] == 1.0 and LEGACY_SUCCESS not in row


def test_a_folder_mixing_old_and_new_records_reports_success_ever_under_its_old_name(tmp_path: Path) -> None:
    """Records written before 0.2.0 carry eval/success_rate beside eval/success_ever; newer ones only the latter.
    A results folder whose experiment asked for the old name reads both kinds as eval/success_ever."""
    runs: list = []
    for seed, column in enumerate(["eval/success_ever", "eval/success_ever"]):
        write_run(tmp_path, ENV, "a", {}, seed, [0.1, 0.2, 0.3, 0.4], column=column, in_manifest=runs)
    old = tmp_path / "runs" / runs[0]["run_id"] / "evaluations.csv"
    rows = list(csv.DictReader(old.open()))
    with open(old, "w", newline="") as handle:  # the first run as written before: both columns
        writer = csv.DictWriter(
            handle, fieldnames=["step", "eval/success_ever", "eval/mean_reward", "eval/success_rate"]
        )
        writer.writeheader()
        writer.writerows({**row, "eval/success_rate": row["eval/success_ever"]} for row in rows)
    write_manifest(tmp_path, runs, ["a"], "a")
    manifest = json.loads((tmp_path / "experiment.json").read_text())
    (tmp_path / "experiment.json").write_text(json.dumps({**manifest, "metric": "eval/success_rate"}))
    summary = build_report(tmp_path, reps=200)
    assert summary["metric"] == "eval/success_ever"
    assert summary["results"][0]["final"][0] == pytest.approx(0.4)


def test_an_experiment_file_naming_the_old_success_column_means_success_ever() -> None:
    from reengage.experiment.spec import expand_experiment

    base = {
        "environments": [ENV],
        "seeds": [0],
        "timesteps": 1000,
        "variants": [{"name": "a", "algo": "ddpg", "alpha": 0}],
    }
    assert expand_experiment({**base, "report": {"metric": "eval/success_rate"}}).metric == "eval/success_ever"
