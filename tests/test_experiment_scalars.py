"""`python -m reengage.experiment scalars`: the mean of logged losses over each run's last steps."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from torch.utils.tensorboard import SummaryWriter

from reengage.experiment.__main__ import main as experiment_main
from reengage.experiment.scalar_means import scalar_means


def _write(run_dir: Path, series: dict[str, list[tuple[int, float]]], wall_time: float, alpha: float | None = None):
    run_dir.mkdir(parents=True, exist_ok=True)
    if alpha is not None:
        (run_dir / "config.yaml").write_text(yaml.safe_dump({"reengage_alpha": alpha}))
    writer = SummaryWriter(str(run_dir), filename_suffix=f".{wall_time:.0f}")
    for tag, points in series.items():
        for step, value in points:
            writer.add_scalar(tag, value, step, walltime=wall_time + step * 1e-3)
    writer.close()


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    _write(
        root / "runs" / "ReenGAGE" / "s0",
        {
            "train/critic_loss": [(100, 1.0), (200, 3.0), (300, 5.0)],
            "train/reengage_loss": [(100, 10.0), (200, 20.0), (300, 40.0)],
        },
        wall_time=1000.0,
        alpha=0.001,
    )
    # a resumed run: the second process re-logged step 300 after the first died; the later value counts
    _write(
        root / "runs" / "DDPG" / "s0",
        {"train/critic_loss": [(100, 2.0), (200, 2.0), (300, 100.0)]},
        wall_time=1000.0,
        alpha=0.0,
    )
    _write(root / "runs" / "DDPG" / "s0", {"train/critic_loss": [(300, 8.0)]}, wall_time=2000.0)
    return root


def test_means_over_the_last_steps_per_run_and_tag(results: Path) -> None:
    rows = {(row.run, row.tag): row for row in scalar_means(results, None, 200)}
    assert set(rows) == {
        ("runs/DDPG/s0", "train/critic_loss"),
        ("runs/DDPG/s0", "train/reengage_loss"),
        ("runs/ReenGAGE/s0", "train/critic_loss"),
        ("runs/ReenGAGE/s0", "train/reengage_loss"),
    }
    assert rows["runs/ReenGAGE/s0", "train/critic_loss"].mean == pytest.approx(4.0)
    assert rows["runs/ReenGAGE/s0", "train/reengage_loss"].mean == pytest.approx(30.0)
    assert rows["runs/ReenGAGE/s0", "train/reengage_loss"].alpha == 0.001
    resumed = rows["runs/DDPG/s0", "train/critic_loss"]
    assert resumed.mean == pytest.approx(5.0) and resumed.points == 2 and resumed.last_step == 300
    # DDPG never logged the ReenGAGE term: no value, said so, not a zero
    absent = rows["runs/DDPG/s0", "train/reengage_loss"]
    assert absent.mean is None and absent.points == 0


def test_one_run_folder_and_a_window_after_the_last_step(results: Path) -> None:
    run_dir = results / "runs" / "ReenGAGE" / "s0"
    (whole,) = scalar_means(run_dir, ["train/critic_loss"], 0)
    assert whole.run == "." and whole.mean == pytest.approx(3.0) and whole.points == 3
    (late,) = scalar_means(run_dir, ["train/critic_loss"], 301)
    assert late.mean is None and late.points == 0 and late.last_step == 300


def test_the_command_prints_a_table(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = experiment_main(["scalars", str(results), "--tag", "train/reengage_loss", "--from-step", "200"])
    out = capsys.readouterr().out
    assert code == 0
    assert "| runs/ReenGAGE/s0 | 0.001 | train/reengage_loss | 30 | 2 | 300 |" in out
    assert "| runs/DDPG/s0 | 0 | train/reengage_loss | - | 0 | - |" in out


def test_an_unknown_tag_exits_2_naming_the_logged_ones(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert experiment_main(["scalars", str(results), "--tag", "train/nope"]) == 2
    err = capsys.readouterr().err
    assert "'train/nope'" in err and "logged tags: train/critic_loss, train/reengage_loss" in err


def test_a_negative_step_exits_2(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        experiment_main(["scalars", str(results), "--from-step", "-1"])
    assert stop.value.code == 2 and "must be >= 0, got -1" in capsys.readouterr().err


def test_paths_without_runs_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    for path, expected in (
        (tmp_path / "missing", "not found"),
        (empty, "no TensorBoard event files"),
        (a_file, "is a file"),
    ):
        assert experiment_main(["scalars", str(path)]) == 2
        assert expected in capsys.readouterr().err


def test_an_unreadable_run_config_exits_2_naming_it(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = results / "runs" / "ReenGAGE" / "s0" / "config.yaml"
    config.write_text("reengage_alpha: [unclosed\n")
    assert experiment_main(["scalars", str(results)]) == 2
    err = capsys.readouterr().err
    assert f"{config} is not readable YAML" in err and "Traceback" not in err
