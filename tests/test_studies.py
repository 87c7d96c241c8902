"""The research tools of reengage.studies: binning, reading runs old and new, branching a checkpoint, and bad
input refused with exit code 2."""

import pytest

from reengage.studies import plot_diagnostics
from train import main as train_main


def _run(tmp_path, name, successes, success_column="eval/success_ever"):
    run = tmp_path / name
    run.mkdir()
    lines = [f"step,{success_column},eval/success_final,eval/mean_return"]
    lines += [f"{2000 * (i + 1)},{s},{s},-9.0" for i, s in enumerate(successes)]
    (run / "evaluations.csv").write_text("\n".join(lines) + "\n")
    return run


def test_binning_and_csv_reading(tmp_path):
    assert plot_diagnostics.binned([(1, 1.0), (1000, 3.0), (1001, 5.0)], 1000) == {1000: 2.0, 2000: 5.0}
    run = _run(tmp_path, "r", [0.0, 0.5])
    assert plot_diagnostics.read_scalars(run)["eval/success_ever"] == [(2000, 0.0), (4000, 0.5)]
    # a run written before the column's rename: its eval/success_rate is read as eval/success_ever
    old = plot_diagnostics.read_scalars(_run(tmp_path, "old", [0.25, 0.75], success_column="eval/success_rate"))
    assert old["eval/success_ever"] == [(2000, 0.25), (4000, 0.75)] and "eval/success_rate" not in old
    assert plot_diagnostics.main([str(tmp_path / "missing")]) == 2
    assert plot_diagnostics.main([str(run), "--bucket", "0"]) == 2


def test_negative_diagnostics_interval_exits_2(tmp_path, capsys):
    code = train_main(
        [
            "--env",
            "reengage/ContinuousSeek-v0",
            "--timesteps",
            "10",
            "--set",
            "reengage_diagnostics=-1",
            "--logdir",
            str(tmp_path / "run"),
            "--no-progress",
        ]
    )
    assert code == 2
    assert "reengage_diagnostics=-1 is out of range; reengage_diagnostics must be >= 0" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused with the configuration, before the run folder is made


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("branch") / "run"
    code = train_main(
        [
            "--env",
            "reengage/ContinuousSeek-v0",
            "--algo",
            "ddpg",
            "--alpha",
            "0",
            "--trainer",
            "sb3",
            "--timesteps",
            "1200",
            "--set",
            "env_kwargs={d: 3, box: 3.0}",
            "--set",
            "batch_size=32",
            "--set",
            "checkpoint_every=1100",
            "--logdir",
            str(logdir),
            "--no-progress",
        ]
    )
    assert code == 0
    return logdir / "checkpoint"


@pytest.mark.parametrize("extra", [["--matching", "one_sided"], ["--value-mask", "-0.5"]])
def test_branch_run_continues_a_checkpoint_with_another_term(small_checkpoint, tmp_path, extra):
    from reengage.studies import branch_run

    out = tmp_path / "branch"
    assert branch_run.main([str(small_checkpoint), str(out), "--alpha", "0.2", "--steps", "150", *extra]) == 0
    assert list(out.glob("events.out.tfevents.*"))


def test_branch_run_refuses_value_mask_with_one_sided_matching(small_checkpoint, tmp_path, capsys):
    from reengage.studies import branch_run

    code = branch_run.main(
        [str(small_checkpoint), str(tmp_path / "b"), "--alpha", "0.2", "--matching", "one_sided", "--value-mask", "-1"]
    )
    assert code == 2
    assert "--value-mask" in capsys.readouterr().err
