"""``python -m reengage.experiment tune``: the tune section's checks, a tiny study end to end, its relaunch, pruning
(in the worker, from the runs' evaluations), the report to the study, and the best settings as a config snippet."""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

optuna = pytest.importorskip("optuna")

from reengage.experiment.__main__ import main as experiment_main  # noqa: E402
from reengage.experiment.config import parse_assignment  # noqa: E402
from reengage.experiment.runner import RunPruned  # noqa: E402
from reengage.experiment.spec import load_experiment  # noqa: E402
from reengage.experiment.tune import STUDY_FILE, best_snippet, default_storage, set_arguments  # noqa: E402
from reengage.experiment.tune_study import evaluation_reporter, open_storage  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# 300-step runs with 16-unit networks: a trial's seed trains in a few seconds
TINY = {
    "name": "tiny_tune",
    "environments": ["reengage/ContinuousSeek5-v0"],
    "timesteps": 300,
    "overrides": {
        "learning_starts": 100,
        "net_arch": [16, 16],
        "buffer_size": 10000,
        "her": {"n_sampled_goal": 2, "goal_selection_strategy": "future"},
        "eval_freq": 100,
        "eval_episodes": 3,
        "checkpoint_every": 100,
    },
    "variants": [{"name": "ReenGAGE", "algo": "ddpg", "alpha": 0.2}],
    "tune": {
        "trials": 3,
        "seeds": 2,
        "sampler": {"type": "tpe", "seed": 0},
        "pruner": "none",
        "search_space": {
            "reengage_alpha": {"type": "float", "low": 0.01, "high": 1.0, "log": True},
            "algo_kwargs.reengage_matching": {"type": "categorical", "choices": ["full", "one_sided"]},
            "batch_size": {"type": "categorical", "choices": [16, 32]},
            "learning_rate": {"type": "float", "low": 1.0e-4, "high": 3.0e-3, "log": True},
        },
    },
}


def write_file(tmp_path: Path, raw: dict, name: str = "tune.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def load_study(results: Path, name: str = "tiny_tune"):
    return optuna.load_study(study_name=name, storage=open_storage(default_storage(results)))


def statuses(results: Path) -> dict[str, dict]:
    return {
        str(path.parent.relative_to(results / "runs")): json.loads(path.read_text())
        for path in (results / "runs").rglob("status.json")
    }


# ---------------------------------------------------------------- the tune section's checks


def _with_tune(**changes) -> dict:
    raw = copy.deepcopy(TINY)
    for key, value in changes.items():
        if key == "search_space":
            raw["tune"]["search_space"] = value
        elif key == "file":
            raw.update(value)
        else:
            raw["tune"][key] = value
    return raw


BAD = {
    "unknown tune key": (_with_tune(smaple="tpe"), "unknown key 'smaple'"),
    "not a config key": (
        _with_tune(search_space={"learnin_rate": {"type": "float", "low": 1e-4, "high": 1e-3}}),
        "tune.search_space.learnin_rate: 'learnin_rate' is not a config key",
    ),
    "low >= high": (
        _with_tune(search_space={"learning_rate": {"type": "float", "low": 1e-2, "high": 1e-3}}),
        "tune.search_space.learning_rate: low=0.01 >= high=0.001",
    ),
    "log with low 0": (
        _with_tune(search_space={"reengage_alpha": {"type": "float", "low": 0, "high": 1, "log": True}}),
        "tune.search_space.reengage_alpha: log: true needs low > 0",
    ),
    "empty choices": (
        _with_tune(search_space={"batch_size": {"type": "categorical", "choices": []}}),
        "tune.search_space.batch_size: choices=[] must be a non-empty list",
    ),
    "unknown type": (
        _with_tune(search_space={"batch_size": {"type": "uniform", "low": 1, "high": 2}}),
        "tune.search_space.batch_size: type='uniform' is not valid; valid forms: {type: float",
    ),
    "float range of an int key": (
        _with_tune(search_space={"batch_size": {"type": "float", "low": 16, "high": 64}}),
        "tune.search_space.batch_size: batch_size takes int, not a float range",
    ),
    "bound outside the key's range": (
        _with_tune(search_space={"gamma": {"type": "float", "low": 0.9, "high": 1.5}}),
        "tune.search_space.gamma: high: gamma=1.5 is out of range",
    ),
    "refused choice": (
        _with_tune(
            search_space={"algo_kwargs.reengage_matching": {"type": "categorical", "choices": ["full", "half"]}}
        ),
        "tune.search_space.algo_kwargs.reengage_matching: choice algo_kwargs.reengage_matching='half' "
        "is not valid; valid choices: full, one_sided",
    ),
    "key the algorithm does not take": (
        _with_tune(search_space={"algo_kwargs.reengage_tau": {"type": "float", "low": 0.1, "high": 0.9}}),
        "tune.search_space.algo_kwargs.reengage_tau=0.1: ",
    ),
    "unknown field": (
        _with_tune(search_space={"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-3, "logg": True}}),
        "tune.search_space.learning_rate: unknown field 'logg' for type float",
    ),
    "pruner misspelt": (_with_tune(pruner="meadian"), "tune.pruner.type='meadian' is not valid; valid choices: median"),
    "two environments": (
        _with_tune(file={"environments": ["reengage/ContinuousSeek5-v0", "reengage/ContinuousSeek10-v0"]}),
        "a file with a tune section names one environment",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_tune_section_exits_2_naming_the_key_before_anything_is_written(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    raw, expected = BAD[case]
    results = tmp_path / "results"
    code = experiment_main(["tune", str(write_file(tmp_path, raw)), "--results", str(results)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert expected in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not results.exists()


def test_a_file_without_a_tune_section_exits_2(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    code = experiment_main(
        ["tune", str(ROOT / "configs" / "experiments" / "smoke.yaml"), "--results", str(tmp_path / "r")]
    )
    err = capsys.readouterr().err
    assert code == 2 and "has no tune section" in err
    # the example it gives is valid YAML of the section's form
    example = err.split("add ", 1)[1].split(" (docs/", 1)[0]
    assert yaml.safe_load(example) == {
        "tune": {"trials": "N", "search_space": {"KEY": {"type": "float", "low": "L", "high": "H"}}}
    }


def test_the_example_study_file_reads_and_tunes_what_its_comment_says() -> None:
    experiment = load_experiment(ROOT / "configs" / "experiments" / "tune_continuous_seek.yaml")
    spec = experiment.tune
    assert spec.trials == 20 and spec.seeds == (100, 101, 102, 103, 104)
    assert set(spec.search_space) == {"reengage_alpha", "algo_kwargs.reengage_matching", "batch_size", "learning_rate"}
    assert [run.config["timesteps"] for run in experiment.runs] == [20000]
    assert experiment.runs[0].env_id == "reengage/ContinuousSeek10-v0" and experiment.runs[0].algo == "ddpg"


# ---------------------------------------------------------------- the best settings as a snippet


class _Trial:
    number, value = 4, 0.75
    user_attrs = {
        "settings": {
            "reengage_alpha": 0.0123456789,
            "batch_size": 256,
            "algo_kwargs.reengage_matching": "one_sided",
            "net_arch": [64, 64],
        }
    }


def test_the_snippet_is_a_config_mapping_and_its_set_arguments_read_back_as_the_settings() -> None:
    spec = load_experiment(ROOT / "configs" / "experiments" / "tune_continuous_seek.yaml").tune
    text = best_snippet(_Trial(), spec)
    assert text.startswith("# best trial 4: value 0.75")
    assert yaml.safe_load(text) == {
        "reengage_alpha": 0.0123456789,
        "batch_size": 256,
        "algo_kwargs": {"reengage_matching": "one_sided"},
        "net_arch": [64, 64],
    }
    import shlex

    words = shlex.split(set_arguments(_Trial.user_attrs["settings"]))
    parsed = {".".join(path): value for path, value in (parse_assignment(word) for word in words[1::2])}
    assert words[0::2] == ["--set"] * 4
    assert parsed == _Trial.user_attrs["settings"]


# ---------------------------------------------------------------- the worker's report and the pruner


def _study_with_good_trials(tmp_path: Path, pruner: dict) -> tuple[str, int]:
    """A study with two complete trials whose intermediate values are 1.0 at steps 100 and 200; returns the
    storage URL and the number of a new RUNNING trial."""
    url = f"sqlite:///{tmp_path / STUDY_FILE}"
    study = optuna.create_study(storage=open_storage(url), study_name="s", direction="maximize")
    for _ in range(2):
        study.add_trial(
            optuna.trial.create_trial(
                value=1.0, intermediate_values={100: 1.0, 200: 1.0}, state=optuna.trial.TrialState.COMPLETE
            )
        )
    return url, study.ask().number


def _report(url: str, number: int, pruner: dict, offset: int = 0, previous: list | None = None) -> dict:
    return {
        "storage": url,
        "study": "s",
        "trial": number,
        "offset": offset,
        "previous": previous or [],
        "metric": "auc",
        "column": "eval/success_ever",
        "pruner": pruner,
    }


def _rows(*values: float) -> list[dict]:
    return [{"step": 100 * (i + 1), "eval/success_ever": value} for i, value in enumerate(values)]


def test_the_median_pruner_stops_a_trial_below_the_others_at_its_first_evaluation(tmp_path: Path) -> None:
    pruner = {"type": "median", "startup_trials": 2}
    url, number = _study_with_good_trials(tmp_path, pruner)
    hook = evaluation_reporter(_report(url, number, pruner))
    with pytest.raises(RunPruned) as stopped:
        hook(100, _rows(0.0))
    assert stopped.value.step == 100 and stopped.value.value == 0.0
    trial = optuna.load_study(study_name="s", storage=open_storage(url)).trials[number]
    assert trial.intermediate_values == {100: 0.0}


def test_a_trial_as_good_as_the_others_goes_on_and_reports_each_step_once(tmp_path: Path) -> None:
    pruner = {"type": "median", "startup_trials": 2}
    url, number = _study_with_good_trials(tmp_path, pruner)
    hook = evaluation_reporter(_report(url, number, pruner))
    hook(100, _rows(1.0))
    hook(200, _rows(1.0, 1.0))
    # a resumed run evaluates a step again: not reported twice
    evaluation_reporter(_report(url, number, pruner))(200, _rows(1.0, 1.0))
    trial = optuna.load_study(study_name="s", storage=open_storage(url)).trials[number]
    assert trial.intermediate_values == {100: 1.0, 200: 1.0}


def test_a_later_seed_reports_on_the_trial_axis_with_the_earlier_seeds_values(tmp_path: Path) -> None:
    pruner = {"type": "none"}
    url, number = _study_with_good_trials(tmp_path, pruner)
    # the trial's second seed (runs of 300 steps): step 100 of this run is trial step 400
    evaluation_reporter(_report(url, number, pruner, offset=300, previous=[0.5]))(100, _rows(0.25))
    trial = optuna.load_study(study_name="s", storage=open_storage(url)).trials[number]
    assert trial.intermediate_values == {400: pytest.approx((0.5 + 0.25) / 2)}


# ---------------------------------------------------------------- studies end to end


@pytest.fixture(scope="module")
def two_trials(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A study of the tiny file stopped at 2 trials (2 seeds each, one worker): (experiment file, results)."""
    folder = tmp_path_factory.mktemp("tune")
    path = write_file(folder, TINY)
    results = folder / "results"
    assert experiment_main(["tune", str(path), "--results", str(results), "--workers", "1", "--trials", "2"]) == 0
    return path, results


def test_a_study_trains_each_trial_on_its_seeds_in_ordinary_run_folders(two_trials: tuple[Path, Path]) -> None:
    _, results = two_trials
    study = load_study(results)
    assert [trial.state.name for trial in study.trials] == ["COMPLETE", "COMPLETE"]
    found = statuses(results)
    assert len(found) == 4 and all(status["status"] == "done" for status in found.values())
    for trial in study.trials:
        runs = trial.user_attrs["runs"]
        assert [run["seed"] for run in runs] == [100, 101]
        for run in runs:
            run_dir = results / "runs" / run["run_id"]
            config = yaml.safe_load((run_dir / "config.yaml").read_text())
            for key, value in trial.user_attrs["settings"].items():
                node = config
                for part in key.split("."):
                    node = node[part]
                assert node == value  # the run trained the trial's settings
        # seed 101's evaluations continue the trial's curve after seed 100's 300 steps
        assert sorted(trial.intermediate_values) == [100, 200, 300, 400, 500, 600]
    manifest = json.loads((results / "experiment.json").read_text())
    assert len(manifest["runs"]) == 4


def test_a_relaunch_with_more_trials_keeps_the_study_and_prints_the_best_settings(
    two_trials: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path, original = two_trials
    results = tmp_path / "results"
    shutil.copytree(original, results)
    before = {run_id: status["seconds"] for run_id, status in statuses(results).items()}
    capsys.readouterr()
    assert experiment_main(["tune", str(path), "--results", str(results), "--workers", "1", "--trials", "3"]) == 0
    out, err = capsys.readouterr()
    study = load_study(results)
    assert [trial.state.name for trial in study.trials] == ["COMPLETE"] * 3
    after = statuses(results)
    assert {run_id: after[run_id]["seconds"] for run_id in before} == before  # the first trials were not trained again
    assert len(after) == 6  # one new trial, two seeds
    assert "2 trial(s) ended before, 0 to continue (none), 1 to start" in err
    best = max(study.trials, key=lambda trial: trial.value)
    assert out.startswith(f"# best trial {best.number}: value")
    snippet = yaml.safe_load(out)
    assert snippet["algo_kwargs"]["reengage_matching"] == best.user_attrs["settings"]["algo_kwargs.reengage_matching"]
    assert snippet["learning_rate"] == best.user_attrs["settings"]["learning_rate"]
    assert (results / "best.yaml").read_text() == out
    assert len((results / "trials.csv").read_text().splitlines()) == 4
    # a relaunch of a complete study trains nothing and prints the same settings
    assert experiment_main(["tune", str(path), "--results", str(results), "--workers", "1", "--trials", "3"]) == 0
    assert capsys.readouterr().out == out and len(statuses(results)) == 6
    # and the report and the records read the trials' runs like any experiment's
    assert experiment_main(["report", str(results), "--out", str(tmp_path / "report"), "--reps", "50"]) == 0
    capsys.readouterr()
    assert experiment_main(["records", str(results)]) == 0
    records = capsys.readouterr().out.splitlines()
    assert str(results / "trials.csv") in records and str(results / "best.yaml") in records
    assert sum(line.endswith("status.json") for line in records) == 6 and not any(
        "study.db" in line for line in records
    )


def test_a_study_with_other_base_settings_is_refused(
    two_trials: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    _, original = two_trials
    results = tmp_path / "results"
    shutil.copytree(original, results)
    raw = copy.deepcopy(TINY)
    raw["timesteps"] = 400
    code = experiment_main(["tune", str(write_file(tmp_path, raw)), "--results", str(results), "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "was made with other timesteps" in err, err
    assert len(load_study(results).trials) == 2


def test_a_pruned_trial_stops_at_its_first_evaluation_and_trains_no_other_seed(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    raw = copy.deepcopy(TINY)
    # success is at most 1: every trial is below the threshold from its first evaluation on
    raw["tune"].update(trials=1, pruner={"type": "threshold", "lower": 1.1})
    results = tmp_path / "results"
    assert experiment_main(["tune", str(write_file(tmp_path, raw)), "--results", str(results), "--workers", "1"]) == 0
    out, err = capsys.readouterr()
    (trial,) = load_study(results).trials
    assert trial.state == optuna.trial.TrialState.PRUNED and trial.intermediate_values == {100: 0.0}
    ((run_id, status),) = statuses(results).items()  # seed 101 never started
    assert (
        status["status"] == "pruned"
        and status["step"] == 100
        and run_id.endswith(trial.user_attrs["runs"][0]["run_id"].rpartition("/")[2])
    )
    assert len((results / "runs" / run_id / "evaluations.csv").read_text().splitlines()) == 2  # one evaluation
    assert "trial 0 pruned at step 100 of seed 100" in err and "no complete trial yet" in err and out == ""


@pytest.mark.slow
def test_an_interrupted_study_continues_the_interrupted_trial_from_its_checkpoint(tmp_path: Path) -> None:
    raw = copy.deepcopy(TINY)
    raw["timesteps"] = 1500
    raw["tune"].update(trials=2, seeds=1)
    path = write_file(tmp_path, raw)
    results = tmp_path / "results"
    command = [
        sys.executable,
        "-m",
        "reengage.experiment",
        "tune",
        str(path),
        "--results",
        str(results),
        "--workers",
        "1",
    ]
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.monotonic() + 300
    while not list(results.rglob("checkpoint/state.pkl")):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the driver and its worker
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    study = load_study(results)
    assert [trial.state.name for trial in study.trials] == ["RUNNING"]
    (status,) = statuses(results).values()
    assert status["status"] == "interrupted"
    settings = study.trials[0].user_attrs["settings"]

    assert experiment_main(["tune", str(path), "--results", str(results), "--workers", "1"]) == 0
    study = load_study(results)
    assert [trial.state.name for trial in study.trials] == ["COMPLETE", "COMPLETE"]
    assert study.trials[0].user_attrs["settings"] == settings  # the same trial, continued
    run_id = study.trials[0].user_attrs["runs"][0]["run_id"]
    assert statuses(results)[run_id]["resumed"] is True
    assert sorted(study.trials[0].intermediate_values) == list(range(100, 1600, 100))


def test_a_study_another_process_runs_is_refused_with_exit_75(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    results = tmp_path / "results"
    results.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\nfrom reengage.experiment.run_folder import own_run_folder\n"
            f"with own_run_folder({str(results)!r}):\n    print('held', flush=True)\n    sys.stdin.read()",
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        code = experiment_main(["tune", str(write_file(tmp_path, TINY)), "--results", str(results), "--workers", "1"])
    finally:
        holder.communicate("", timeout=30)
    err = capsys.readouterr().err
    assert code == 75 and f"is being run by process {holder.pid}" in err, err
    assert not (results / STUDY_FILE).exists()
