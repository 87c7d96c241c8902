"""Experiment files: expansion into runs, identity by configuration hash, and refusal of bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from reengage.experiment.__main__ import main as experiment_main
from reengage.experiment.config import resolve_config
from reengage.experiment.spec import ExperimentError, expand_experiment, load_experiment

EXPERIMENTS = Path(__file__).resolve().parents[1] / "configs" / "experiments"

BASE = {
    "environments": ["reengage/ContinuousSeek5-v0", "reengage/ContinuousSeek10-v0"],
    "seeds": [0, 1],
    "timesteps": 1000,
    "variants": [{"name": "DDPG+HER", "algo": "ddpg", "alpha": 0}, {"name": "ReenGAGE", "algo": "ddpg", "alpha": 0.2}],
}


def test_expansion_resolves_configs_like_train_py() -> None:
    experiment = expand_experiment({**BASE, "grid": {"learning_rate": [1e-3, 5e-4]}, "overrides": {"batch_size": 64}})
    assert len(experiment.runs) == 2 * 2 * 2 * 2  # envs x variants x grid x seeds
    run = next(
        r
        for r in experiment.runs
        if r.variant == "ReenGAGE" and r.env_id.endswith("10-v0") and r.point == {"learning_rate": 5e-4} and r.seed == 1
    )
    expected = resolve_config(
        "reengage/ContinuousSeek10-v0", "ddpg", 0.2, 1000, ["batch_size=64", "learning_rate=0.0005"]
    )
    assert run.config == expected
    assert run.config["batch_size"] == 64 and run.config["learning_rate"] == 5e-4
    assert experiment.baseline == "DDPG+HER"


def test_a_changed_setting_is_a_new_run_and_an_unchanged_one_is_the_same_run() -> None:
    first = {r.run_id for r in expand_experiment(BASE).runs}
    assert first == {r.run_id for r in expand_experiment(yaml.safe_load(yaml.safe_dump(BASE))).runs}
    changed = expand_experiment({**BASE, "overrides": {"learning_rate": 2e-3}})
    assert not first & {r.run_id for r in changed.runs}
    longer = expand_experiment({**BASE, "timesteps": 2000})
    assert not first & {r.run_id for r in longer.runs}


def test_variant_level_seeds_environments_and_grid_alpha() -> None:
    raw = {
        **BASE,
        "variants": [
            {"name": "base", "algo": "ddpg", "alpha": 0},
            {
                "name": "sweep",
                "algo": "ddpg",
                "environments": ["reengage/ContinuousSeek10-v0"],
                "seeds": 3,
                "grid": {"alpha": [0.1, 0.3]},
            },
        ],
    }
    runs = expand_experiment(raw).runs
    sweep = [r for r in runs if r.variant == "sweep"]
    assert len(sweep) == 2 * 3 and {r.alpha for r in sweep} == {0.1, 0.3}
    assert {r.config["reengage_alpha"] for r in sweep} == {0.1, 0.3}
    assert {r.seed for r in sweep} == {0, 1, 2}


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"environments": ["reengage/Nope-v0"]}, "reengage/Nope-v0"),
        ({"variants": [{"name": "x", "algo": "ppo"}]}, "valid algos"),
        ({"variants": [{"name": "x", "algo": "ddpg", "alpha": -1}]}, "alpha=-1"),
        ({"variants": [{"name": "x", "algo": "ddpg", "alpha": "big"}]}, "alpha='big'"),
        ({"variants": [{"name": "x", "algo": "ddpg", "colour": 1}]}, "unknown key 'colour'"),
        ({"seeeds": 3}, "unknown key 'seeeds'; valid keys"),
        ({"overrides": {"learning_rat": 1}}, "unknown config key 'learning_rat'"),
        ({"overrides": {"tau": 2}}, "tau=2 is out of range; tau must be in (0, 1]"),
        ({"seeds": 0}, "seeds=0"),
        ({"grid": {"batch_size": 64}}, "grid.batch_size=64"),
        ({"report": {"baseline": "nobody"}}, "report.baseline='nobody'"),
        (
            {"report": {"metric": "eval/final_success"}},
            "report.metric='eval/final_success' is not a column of evaluations.csv; valid: eval/success_ever, eval/success_final",
        ),
    ],
)
def test_bad_experiments_name_the_bad_value(change: dict, fragment: str) -> None:
    with pytest.raises(ExperimentError, match=None) as error:
        expand_experiment({**BASE, **change})
    assert fragment in str(error.value)


def test_cli_bad_inputs_exit_2_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert experiment_main(["run", str(tmp_path / "missing.yaml")]) == 2
    assert "not found" in capsys.readouterr().err
    broken = tmp_path / "broken.yaml"
    broken.write_text("variants: [unclosed\n")
    assert experiment_main(["run", str(broken)]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(yaml.safe_dump({**BASE, "environments": ["reengage/Nope-v0"]}))
    assert experiment_main(["run", str(unknown)]) == 2
    err = capsys.readouterr().err
    assert "reengage/Nope-v0" in err and "reengage/ContinuousSeek5-v0" in err and "Traceback" not in err
    # a bad value is refused before anything is written: no results folder, no run folder
    out_of_range = tmp_path / "out_of_range.yaml"
    out_of_range.write_text(yaml.safe_dump({**BASE, "overrides": {"tau": 2}}))
    assert experiment_main(["run", str(out_of_range), "--results", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert "tau=2 is out of range" in err and "Traceback" not in err and not (tmp_path / "results").exists()
    with pytest.raises(SystemExit) as exit_info:
        experiment_main(["run", str(EXPERIMENTS / "smoke.yaml"), "--workers", "0"])
    assert exit_info.value.code == 2
    assert "--workers: must be >= 1, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        experiment_main(["run", str(EXPERIMENTS / "smoke.yaml"), "--backend", "slurm"])
    assert exit_info.value.code == 2 and "'local', 'ray'" in capsys.readouterr().err
    # --results naming a file, or a path under one: exit 2 before anything runs, for run and list alike
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    for command in ("run", "list"):
        for results in (a_file, a_file / "results"):
            assert experiment_main([command, str(EXPERIMENTS / "smoke.yaml"), "--results", str(results)]) == 2
            err = capsys.readouterr().err
            assert f"--results {results}" in err and "give a folder path" in err and "Traceback" not in err
    assert a_file.read_text() == "not a folder"


def test_missing_ray_gives_install_hint(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    import builtins

    real_import = builtins.__import__

    def without_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_ray)
    assert experiment_main(["run", str(EXPERIMENTS / "smoke.yaml"), "--backend", "ray"]) == 2
    assert 'pip install -e ".[ray]"' in capsys.readouterr().err


# the cluster-scale files resolve hundreds of configurations (tens of seconds on a loaded 2-core machine)
_FILES = [
    pytest.param(path, marks=pytest.mark.slow) if path.stem.endswith("_full") else path
    for path in sorted(EXPERIMENTS.glob("*.yaml"))
]


@pytest.mark.parametrize("path", _FILES, ids=lambda p: getattr(p, "name", str(p)))
def test_every_experiment_file_expands(path: Path) -> None:
    experiment = load_experiment(path)
    assert experiment.runs and experiment.baseline in experiment.variants
