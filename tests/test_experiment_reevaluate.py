"""`python -m reengage.experiment reevaluate`: every finished run's final model on new episodes."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from reengage.experiment import reevaluate as reevaluate_module
from reengage.experiment.__main__ import main as experiment_main
from reengage.experiment.reevaluate import Reevaluation, reevaluate_runs, summary_markdown, table_path
from reengage.experiment.report import ReportError

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "experiments" / "smoke.yaml"


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke grid on an easy task (d = 1, wide tolerance), so that success rates are neither 0 nor 1."""
    folder = tmp_path_factory.mktemp("reevaluate")
    raw = yaml.safe_load(SMOKE.read_text())
    raw["environments"] = ["reengage/ContinuousSeek-v0"]
    raw["overrides"].update(env_kwargs={"d": 1, "box": 5.0, "tolerance": 0.2}, eval_episodes=9)
    experiment = folder / "easy.yaml"
    experiment.write_text(yaml.safe_dump(raw))
    results = folder / "smoke"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "reengage.experiment",
            "run",
            str(experiment),
            "--results",
            str(results),
            "--workers",
            "2",
            "--progress-every",
            "60",
        ],
        check=True,
        cwd=ROOT,
        timeout=600,
    )
    return results


def logged_finals(results: Path, column: str = "eval/success_ever") -> dict[str, float]:
    finals = {}
    for path in (results / "runs").rglob("evaluations.csv"):
        rows = list(csv.DictReader(path.open()))
        finals[str(path.parent.relative_to(results / "runs"))] = float(rows[-1][column])
    return finals


def test_the_runs_own_episodes_give_back_the_logged_final_success(smoke_results: Path, tmp_path: Path) -> None:
    # the runs evaluate on 9 episodes from the default eval_seed: the same episodes must reproduce the log
    results = tmp_path / "smoke"
    shutil.copytree(smoke_results, results)
    rows, missing = reevaluate_runs(results, episodes=9, first_seed=1_000_000, progress=lambda line: None)
    assert missing == [] and len(rows) == 4
    finals = logged_finals(results)
    assert len({*finals.values()} - {0.0, 1.0}) > 0, finals  # a check that 0 == 0 could not fail
    assert {row.run_id: row.success for row in rows} == finals
    assert all(row.logged_final == finals[row.run_id] and row.logged_episodes == 9 for row in rows)


def test_new_episodes_are_written_run_by_run_and_reused(
    smoke_results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = tmp_path / "smoke"
    shutil.copytree(smoke_results, results)
    calls: list[Path] = []
    real = reevaluate_module.evaluate_run

    def counted(run_dir: Path, episodes: int, first_seed: int, metric: str) -> float:
        calls.append(run_dir)
        if len(calls) == 3:
            raise KeyboardInterrupt  # interrupted after two runs
        return real(run_dir, episodes, first_seed, metric)

    monkeypatch.setattr(reevaluate_module, "evaluate_run", counted)
    with pytest.raises(KeyboardInterrupt):
        reevaluate_runs(results, episodes=20, first_seed=5, progress=lambda line: None)
    table = table_path(results, 20, 5)
    assert len(list(csv.DictReader(table.open()))) == 2
    calls.clear()
    rows, _ = reevaluate_runs(results, episodes=20, first_seed=5, progress=lambda line: None)
    assert len(calls) == 2 and len(rows) == 4  # only the two runs not yet in the table
    assert all(row.episodes == 20 and (row.success * 20) == pytest.approx(round(row.success * 20)) for row in rows)
    calls.clear()
    again, _ = reevaluate_runs(results, episodes=20, first_seed=5, progress=lambda line: None)
    assert calls == [] and again == rows


def reevaluation(variant: str, seed: int, logged: float, success: float) -> Reevaluation:
    return Reevaluation(f"E/{variant}/s{seed}", "E", variant, "default", seed, logged, 50, success, 1000)


def test_summary_compares_with_the_baseline_on_both_measures() -> None:
    rows = [reevaluation("base", seed, 0.9, 0.80 + 0.01 * seed) for seed in range(5)]
    rows += [reevaluation("new", seed, 0.7, 0.90 + 0.01 * seed) for seed in range(5)]
    table = summary_markdown(rows, "base", reps=500)
    new_line = next(line for line in table.splitlines() if "| new |" in line)
    # logged: 0.7 - 0.9 = -0.2 with no spread in either group (no Welch CI: the exact permutation test decides);
    # re-evaluated: 0.92 - 0.82 = +0.10 with a Welch CI; 5 vs 5 seeds wholly apart: p = 2/252 for both
    assert "| 5 vs 5 | 0.700 [0.700, 0.700] | 0.920 [" in new_line
    assert "| -0.200 (no spread in either group, no CI) | 0.100 [" in new_line
    assert new_line.endswith("| 0.008 / 0.008 | yes (lower) / yes (higher) |")
    assert "| base | 5 | 0.900 [0.900, 0.900] | 0.820 [" in table
    assert "Welch t CI" in table and "exact permutation" in table
    assert "one 50-episode evaluation: 0.071 at success 0.5" in table


def test_summary_with_few_seeds_is_exploratory() -> None:
    # 3 vs 3 seeds: the smallest two-sided permutation p-value is 2/20 = 0.1, so no difference is claimed, however
    # far apart the seeds are (the Welch CI of the re-evaluated difference excludes 0 on its own)
    rows = [reevaluation("base", seed, 0.9, 0.80 + 0.02 * seed) for seed in range(3)]
    rows += [reevaluation("new", seed, 0.7, 0.90 + 0.02 * seed) for seed in range(3)]
    table = summary_markdown(rows, "base", reps=500)
    new_line = next(line for line in table.splitlines() if "| new |" in line)
    assert "| 3 vs 3 |" in new_line and "| 0.100 [0.0" in new_line
    assert new_line.endswith("| 0.100 / 0.100 | exploratory (3 vs 3 seeds, too few for p <= 0.05): no / no |")
    # 4 vs 4: p can reach 2/70, and the claim is made, but labelled exploratory
    rows = [reevaluation("base", seed, 0.9, 0.80 + 0.01 * seed) for seed in range(4)]
    rows += [reevaluation("new", seed, 0.9, 0.90 + 0.01 * seed) for seed in range(4)]
    new_line = next(line for line in summary_markdown(rows, "base", reps=500).splitlines() if "| new |" in line)
    assert new_line.endswith("| 1.000 / 0.029 | exploratory (4 vs 4 seeds): no / yes (higher) |")


def test_command_line_bad_input_exits_2(smoke_results: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert experiment_main(["reevaluate", str(tmp_path / "missing")]) == 2
    assert "not found" in capsys.readouterr().err
    results = tmp_path / "smoke"
    shutil.copytree(smoke_results, results)
    assert experiment_main(["reevaluate", str(results), "--episodes", "2", "--baseline", "nope"]) == 2
    assert "'nope' is not a variant of these runs; variants: DDPG+HER, ReenGAGE" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        experiment_main(["reevaluate", str(results), "--episodes", "0"])
    assert exit_info.value.code == 2
    assert experiment_main(["reevaluate", str(results), "--episodes", "2"]) == 0
    out = capsys.readouterr().out
    assert "| reengage/ContinuousSeek-v0 | DDPG+HER | 2 |" in out
    assert (results / "reevaluation" / "episodes2_seed10000000.md").exists()
    with pytest.raises(ReportError, match="episodes must be >= 1"):
        reevaluate_runs(results, episodes=0)


def test_final_success_is_re_evaluated_when_the_experiment_reports_it(
    smoke_results: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # the robotics files report eval/success_final (baselines' measure): re-evaluation must measure the same thing,
    # not "goal ever reached", and read the same column of the log
    results = tmp_path / "smoke"
    shutil.copytree(smoke_results, results)
    manifest = results / "experiment.json"
    manifest.write_text(manifest.read_text().replace('"metric": null', '"metric": "eval/success_final"'))
    assert '"eval/success_final"' in manifest.read_text()
    ever, final = logged_finals(results), logged_finals(results, "eval/success_final")
    assert ever != final, (ever, final)  # otherwise the check below could not tell the measures apart
    # the runs' own 9 evaluation episodes reproduce the logged final success, measure for measure
    assert experiment_main(["reevaluate", str(results), "--episodes", "9", "--seed", "1000000"]) == 0
    table = results / "reevaluation" / "episodes9_seed1000000_final.csv"
    rows = {row["run_id"]: row for row in csv.DictReader(table.open())}
    assert {run: float(row["success"]) for run, row in rows.items()} == final
    assert {run: float(row["logged_final"]) for run, row in rows.items()} == final
    assert "(eval/success_final: episode ends at the goal)" in capsys.readouterr().out
    # --metric chooses the other measure explicitly, in its own table
    assert (
        experiment_main(
            ["reevaluate", str(results), "--episodes", "9", "--seed", "1000000", "--metric", "eval/success_ever"]
        )
        == 0
    )
    rows = {row["run_id"]: row for row in csv.DictReader(table_path(results, 9, 1_000_000).open())}
    assert {run: float(row["success"]) for run, row in rows.items()} == ever
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        experiment_main(["reevaluate", str(results), "--metric", "eval/mean_return"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "'eval/mean_return'" in err and "eval/success_ever" in err and "eval/success_final" in err
    with pytest.raises(ReportError, match="choose one of eval/success_ever, eval/success_final"):
        reevaluate_runs(results, episodes=2, metric="eval/mean_return")
