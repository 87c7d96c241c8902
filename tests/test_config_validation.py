"""Bad settings: exit code 2 and one line naming the bad value and what is valid; no traceback.

Most cases call train.py's ``main`` in-process (the same code path as the command, without the
start-up cost of a new interpreter); one case runs the real command to check stderr end to end.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import train
from reengage.experiment.config import CONFIG_DIR, find_config_file, resolve_config, scan_config_files

ROOT = Path(__file__).resolve().parents[1]


def _main(capsys, *argv):
    code = train.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.err


@pytest.mark.parametrize(
    "assignment, expected",
    [
        (
            "her.n_sampled_gaol=8",
            r"her\.n_sampled_gaol is not an argument of HerReplayBuffer; valid keys for her: .*n_sampled_goal",
        ),
        ("policy_kwargs.net_arc=[64]", r"policy_kwargs\.net_arc .*valid keys for policy_kwargs: .*net_arch"),
        ("algo_kwargs.polcy_delay=2", r"algo_kwargs\.polcy_delay is not an argument of (Fast)?ReenGAGEDDPG"),
        ("env_kwargs.horizn=5", r"env_kwargs\.horizn .*valid keys for env_kwargs: .*horizon"),
        ("tau=2", r"tau=2 is out of range; tau must be in \(0, 1\]"),
        ("tau=0", r"tau must be in \(0, 1\]"),
        ("learning_starts=-1", r"learning_starts=-1 is out of range; learning_starts must be >= 0"),
        ("action_noise_std=-1", r"action_noise_std=-1 .*must be >= 0"),
        ("learning_rate=-1", r"learning_rate=-1 .*must be > 0"),
        ("learning_rate=0", r"learning_rate=0 .*must be > 0"),
        ("batch_size=0", r"batch_size=0 is out of range; batch_size must be >= 1"),
        ("gamma=1.5", r"gamma must be in \(0, 1\]"),
        ("eval_seed=-3", r"eval_seed=-3 .*>= 0"),
        ("her.n_sampled_goal=-1", r"her\.n_sampled_goal=-1 .*>= 0"),
        ("her.goal_selection_strategy=futur", r"'futur' is not valid; valid choices: future, final, episode"),
        ("reengage_mode=sparce", r"valid choices: sparse, dense"),
        ("net_arch=[64,-1]", r"net_arch=\[64, -1\] .*list of positive integers"),
        ("observation_noise={sigma: -0.1}", r"observation_noise=.*sigma must be a positive finite number"),
        ("observation_noise={sigam: 0.1}", r"observation_noise\.sigam .*valid keys: kind, sigma"),
        ("policy=NoSuchPolicy", r"policy='NoSuchPolicy' is not valid; valid choices: .*MultiInputPolicy"),
    ],
)
def test_bad_setting_exits_2_naming_value_and_valid_range(tmp_path, capsys, assignment, expected):
    code, err = _main(
        capsys, "--timesteps", "10", "--logdir", str(tmp_path / "run"), "--set", assignment, "--no-progress"
    )
    assert code == 2
    assert __import__("re").search(expected, err), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "run").exists(), "a refused run must not create its folder"


def test_every_shipped_configuration_passes_the_checks():
    for config_file in scan_config_files()[0]:
        for env_id in config_file.env_ids:
            for algo in config_file.algos:
                for alpha in (0.0, 0.2):
                    resolve_config(env_id, algo, alpha)  # raises on any bad shipped value


def test_logdir_that_is_a_file_or_under_a_file(tmp_path, capsys):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("keep me")
    for logdir, says in ((blocker, "is a file"), (blocker / "run", "lies under")):
        for extra in ([], ["--resume"]):
            code, err = _main(capsys, "--timesteps", "10", "--logdir", str(logdir), "--no-progress", *extra)
            assert code == 2 and says in err and str(blocker) in err, err
    assert blocker.read_text() == "keep me"


def _configs_with_broken_file(tmp_path):
    folder = tmp_path / "configs"
    shutil.copytree(CONFIG_DIR, folder)
    broken = folder / "bit_flipping.yaml"
    lines = broken.read_text().splitlines()
    line = next(i for i, text in enumerate(lines) if text.startswith("common:"))
    lines.insert(line + 1, "  batch_size: [128")  # an unclosed flow sequence
    broken.write_text("\n".join(lines) + "\n")
    return folder, line + 2


def test_yaml_syntax_error_affects_only_its_family(tmp_path):
    folder, _ = _configs_with_broken_file(tmp_path)
    good, broken = scan_config_files(folder)
    assert [problem.path.name for problem in broken] == ["bit_flipping.yaml"]
    assert "reengage/ContinuousSeek5-v0" in {env for config in good for env in config.env_ids}
    assert resolve_config("reengage/ContinuousSeek5-v0", "ddpg", config_dir=folder)["batch_size"] == 512
    with pytest.raises(ValueError, match=r"bit_flipping\.yaml, line \d+, column \d+: YAML syntax error"):
        find_config_file("reengage/BitFlipping20-v0", folder)


def test_list_envs_reports_the_broken_file_and_lists_the_others(tmp_path, capsys, monkeypatch):
    folder, line = _configs_with_broken_file(tmp_path)
    monkeypatch.setattr(train, "scan_config_files", lambda: scan_config_files(folder))
    code = train.main(["--list-envs"])
    captured = capsys.readouterr()
    assert code == 0
    assert "reengage/ContinuousSeek5-v0" in captured.out and "reengage/BitFlipping20-v0" not in captured.out
    assert "bit_flipping.yaml, line" in captured.err and "Traceback" not in captured.err


def test_the_real_command_prints_one_line_and_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "--set", "tau=2", "--logdir", str(tmp_path / "run"), "--no-progress"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "train.py: error: tau=2 is out of range; tau must be in (0, 1]"


def test_algo_reengage_subsection_applies_to_that_algorithms_runs_with_alpha_only(tmp_path):
    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "seek.yaml").write_text(
        "env_ids:\n  reengage/ContinuousSeek5-v0: {}\n"
        "common: {reengage_alpha: 0.2}\n"
        "algos:\n  ddpg:\n    batch_size: 128\n    reengage: {algo_kwargs: {reengage_matching: one_sided}}\n"
        "  td3: {}\n"
    )
    with_term = resolve_config("reengage/ContinuousSeek5-v0", "ddpg", config_dir=folder)
    assert with_term["algo_kwargs"] == {"reengage_matching": "one_sided"}
    assert with_term["batch_size"] == 128
    baseline = resolve_config("reengage/ContinuousSeek5-v0", "ddpg", alpha=0.0, config_dir=folder)
    assert baseline["algo_kwargs"] == {} and baseline["batch_size"] == 128
    # another algorithm of the same file does not get it
    assert resolve_config("reengage/ContinuousSeek5-v0", "td3", config_dir=folder)["algo_kwargs"] == {}
    # an alpha set on the command line chooses it too, and the command line still wins
    via_set = resolve_config(
        "reengage/ContinuousSeek5-v0", "ddpg", alpha=None, config_dir=folder, assignments=["reengage_alpha=0"]
    )
    assert via_set["algo_kwargs"] == {}
    overridden = resolve_config(
        "reengage/ContinuousSeek5-v0",
        "ddpg",
        alpha=None,
        config_dir=folder,
        assignments=["reengage_alpha=0.3", "algo_kwargs.reengage_matching=full"],
    )
    assert overridden["algo_kwargs"] == {"reengage_matching": "full"} and overridden["reengage_alpha"] == 0.3
    bad = folder / "seek.yaml"
    bad.write_text(bad.read_text().replace("reengage: {algo_kwargs", "reengage: {no_such_key: 1, algo_kwargs"))
    with pytest.raises(ValueError, match="algos.ddpg.reengage: unknown config key 'no_such_key'"):
        resolve_config("reengage/ContinuousSeek5-v0", "ddpg", config_dir=folder)


@pytest.mark.parametrize(
    "env_id, matching",
    [
        ("reengage/ContinuousSeek-v0", "one_sided"),  # the generic id: the user picks d, box, batch and lr
        ("reengage/ContinuousSeek5-v0", "full"),  # Table G.2's tuned settings: the paper's Eq. 8.9
        ("reengage/ContinuousSeek10-v0", "full"),
        ("reengage/ContinuousSeek20-v0", "full"),
    ],
)
def test_continuous_seek_ddpg_matching_default_per_id(env_id, matching):
    # measured on DDPG (docs/diagnosis.md); TD3 and SAC keep the paper's Eq. 8.9 (the agents' class default)
    assert resolve_config(env_id, "ddpg", alpha=0.2)["algo_kwargs"] == {"reengage_matching": matching}
    assert "reengage_matching" not in resolve_config(env_id, "ddpg", alpha=0.0)["algo_kwargs"]
    for algo in ("td3", "sac"):
        assert "reengage_matching" not in resolve_config(env_id, algo, alpha=0.2)["algo_kwargs"]
    # the user's choice wins over the id's default
    other = "full" if matching == "one_sided" else "one_sided"
    chosen = resolve_config(env_id, "ddpg", alpha=0.2, assignments=[f"algo_kwargs.reengage_matching={other}"])
    assert chosen["algo_kwargs"]["reengage_matching"] == other


@pytest.mark.parametrize(
    "assignment", ["obs_normalization={}", "target_value_clip=true", "action_l2=0.5", "random_action_prob=0.3"]
)
def test_fast_path_takes_the_recipe_options_for_ddpg_and_td3(assignment):
    """The robotics recipe runs on the fast path for DDPG and TD3 (tests/test_fast_robotics.py)."""
    for algo in ("ddpg", "td3"):
        config = resolve_config("reengage/ContinuousSeek5-v0", algo, 0.2, assignments=[assignment])
        assert config["trainer"] == "fast"


def test_fast_path_refuses_the_normaliser_for_sac(tmp_path, capsys):
    """SAC's fast update has no verified normaliser path: exit 2 naming the key and the algorithm, never ignored."""
    code, err = _main(
        capsys,
        "--env",
        "reengage/ContinuousSeek5-v0",
        "--algo",
        "sac",
        "--timesteps",
        "10",
        "--logdir",
        str(tmp_path / "run"),
        "--set",
        "obs_normalization={}",
        "--no-progress",
    )
    assert code == 2
    assert "obs_normalization is supported on the SB3 training path only for algo 'sac'" in err, err
    assert "--trainer sb3" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "run").exists()
    # the same setting on the SB3 path resolves (train.py would train it)
    config = resolve_config(
        "reengage/ContinuousSeek5-v0", "sac", 0.0, assignments=["obs_normalization={}", "trainer=sb3"]
    )
    assert config["trainer"] == "sb3"


@pytest.mark.parametrize(
    "args, expected",
    [
        # top-level keys (the table's rows)
        (["--set", "learning_rate=abc"], r"learning_rate='abc' has the wrong type; expected int, float"),
        (["--set", "gamma=[1]"], r"gamma=\[1\] has the wrong type; expected int, float"),
        (["--set", "tau=yes"], r"tau=True has the wrong type; expected int, float"),
        (["--set", "train_freq=abc"], r"train_freq='abc' has the wrong type; expected int"),
        # the constructors' own arguments, checked against their annotations
        (
            ["--set", "algo_kwargs.learning_rate=abc"],
            r"algo_kwargs\.learning_rate='abc' has the wrong type; (Fast)?ReenGAGEDDPG's learning_rate takes a number or a "
            r"function",
        ),
        (["--set", "algo_kwargs.learning_rate=1e-3"], r"YAML reads 1e-3 as text: write it with a decimal point"),
        (["--set", "algo_kwargs.gamma=[1]"], r"algo_kwargs\.gamma=\[1\] has the wrong type; .*gamma takes a number"),
        (["--set", "algo_kwargs.tau=yes"], r"algo_kwargs\.tau=True has the wrong type; .*tau takes a number"),
        (["--set", "algo_kwargs.train_freq=abc"], r"algo_kwargs\.train_freq='abc' .*train_freq takes an integer"),
        (["--set", "algo_kwargs.optimize_memory_usage=abc"], r"optimize_memory_usage takes true or false"),
        (
            ["--set", "algo_kwargs.replay_buffer_kwargs=3"],
            r"replay_buffer_kwargs=3 .*takes a mapping \{key: value\} or null",
        ),
        (["--set", "algo_kwargs.action_noise=0.1"], r"action_noise takes an ActionNoise \(set from Python\) or null"),
        (
            ["--set", "policy_kwargs.net_arch=abc"],
            r"policy_kwargs\.net_arch='abc' has the wrong type; MultiInputPolicy's net_arch takes a list of integers",
        ),
        (["--set", "policy_kwargs.net_arch=[64, a]"], r"policy_kwargs\.net_arch=\[64, 'a'\] has the wrong type"),
        (["--set", "policy_kwargs.n_critics=abc"], r"policy_kwargs\.n_critics='abc' .*n_critics takes an integer"),
        (["--set", "policy_kwargs.normalize_images=3"], r"normalize_images takes true or false"),
        (["--set", "policy_kwargs.features_extractor_kwargs=[1]"], r"features_extractor_kwargs takes a mapping"),
        (
            ["--set", "her.copy_info_dict=abc"],
            r"her\.copy_info_dict='abc' .*HerReplayBuffer's copy_info_dict takes true",
        ),
        (
            ["--set", "env_kwargs.d=abc"],
            r"env_kwargs\.d='abc' has the wrong type; ContinuousSeekEnv's d takes an integer",
        ),
        (
            ["--algo", "sac", "--set", "algo_kwargs.ent_coef=[1]"],
            r"algo_kwargs\.ent_coef=\[1\] .*ent_coef takes a string or a number",
        ),
        (
            ["--algo", "td3", "--set", "algo_kwargs.policy_delay=[2]"],
            r"algo_kwargs\.policy_delay=\[2\] has the wrong type",
        ),
        (
            ["--env", "reengage/BitFlipping-v0", "--algo", "dqn", "--set", "algo_kwargs.max_grad_norm=big"],
            r"algo_kwargs\.max_grad_norm='big' has the wrong type; .*max_grad_norm takes a number",
        ),
    ],
)
def test_a_value_of_the_wrong_type_exits_2_naming_the_key_and_the_type(tmp_path, capsys, args, expected):
    code, err = _main(capsys, "--timesteps", "10", "--logdir", str(tmp_path / "run"), *args, "--no-progress")
    assert code == 2, err
    assert __import__("re").search(expected, err), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "run").exists(), "a refused run must not create its folder"


def test_values_of_the_right_type_pass_the_annotation_checks():
    from reengage.experiment.signature_checks import describe_type, value_matches

    config = resolve_config(
        "reengage/ContinuousSeek5-v0",
        "ddpg",
        0.2,
        10,
        [
            "policy_kwargs.net_arch={pi: [8], qf: [8]}",
            "algo_kwargs.learning_rate=0.001",
            "algo_kwargs.tau=1",
            "her.copy_info_dict=true",
            "policy_kwargs.n_critics=2",
            "algo_kwargs.replay_buffer_kwargs={}",
        ],
    )
    assert config["policy_kwargs"]["net_arch"] == {"pi": [8], "qf": [8]}
    assert value_matches(3, float) and not value_matches(True, float) and not value_matches(3.0, int)
    assert value_matches(lambda progress: 1e-3, float | __import__("collections.abc").abc.Callable[[float], float])
    assert value_matches(None, list[int] | None) and not value_matches([1.5], list[int])
    assert describe_type(int | None) == "an integer or null"


@pytest.mark.parametrize("trainer", ["fast", "sb3"])
def test_a_combination_stable_baselines3_refuses_exits_2_and_the_corrected_command_then_runs(tmp_path, capsys, trainer):
    # SB3 checks some combinations with assertions: the dictionary replay buffer refuses optimize_memory_usage
    logdir = str(tmp_path / "run")
    common = ["--timesteps", "200", "--logdir", logdir, "--trainer", trainer, "--no-progress"]
    code, err = _main(capsys, *common, "--set", "algo_kwargs.optimize_memory_usage=true")
    assert code == 2, err
    assert "refuses these settings: DictReplayBuffer does not support optimize_memory_usage" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "run").exists(), "a refused run must not leave its folder behind"
    # the corrected command starts without --restart
    code, err = _main(capsys, *common, "--set", "learning_starts=50", "--set", "net_arch=[16,16]")
    assert code == 0, err
