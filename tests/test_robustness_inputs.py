"""Refusals that used to be crashes: unsupported spaces and bad CLI input exit with code 2,
a one-line message and no traceback, before any work."""

import json
import subprocess
import sys
import time

import gymnasium as gym
import pytest
import reengage.envs  # noqa: F401
from gymnasium import spaces
from stable_baselines3 import DQN, TD3

from reengage.certify import main
from reengage.robustness import PolicyAdapter, SmoothingConfig, save_smoothed


class _SpaceEnv(gym.Env):
    """A do-nothing environment with a chosen observation space."""

    def __init__(self, space: str = "tuple") -> None:
        box = spaces.Box(-1, 1, (2,))
        self.observation_space = {
            "multidiscrete": spaces.MultiDiscrete([3, 4]),
            "tuple": spaces.Tuple((box, spaces.Discrete(3))),
            "text": spaces.Text(8),
            "nested": spaces.Dict({"observation": box, "inner": spaces.Dict({"a": box})}),
            "dict_discrete": spaces.Dict({"observation": box, "mode": spaces.Discrete(2)}),
        }[space]
        self.action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, True, {}


for _name in ("multidiscrete", "tuple", "text", "nested", "dict_discrete"):
    if f"issue13test/{_name}-v0" not in gym.registry:
        gym.register(
            f"issue13test/{_name}-v0", entry_point=_SpaceEnv, kwargs={"space": _name}, disable_env_checker=True
        )


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    frozen = DQN("MlpPolicy", gym.make("FrozenLake-v1"), learning_starts=0, device="cpu", seed=0)
    frozen.save(root / "frozen")
    td3 = TD3(
        "MultiInputPolicy",
        gym.make("reengage/ContinuousSeekDense-v0"),
        policy_kwargs={"net_arch": [16]},
        device="cpu",
        seed=0,
    )
    save_smoothed(
        td3, root / "dense", SmoothingConfig(sigma=0.1), seed=0, env_id="reengage/ContinuousSeekDense-v0", env_kwargs={}
    )
    (root / "notazip.zip").write_text("hello")
    (root / "afile").write_text("x")
    return root


def _refused(capsys, argv, *needles):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.mark.parametrize(
    "space,needle",
    [
        ("multidiscrete", "MultiDiscrete"),
        ("tuple", "Tuple"),
        ("text", "Text"),
        ("nested", "Dict"),
        ("dict_discrete", "Discrete"),
    ],
)
def test_unsupported_observation_spaces_refused_up_front(models, tmp_path, capsys, space, needle):
    _refused(
        capsys,
        [
            "--model",
            str(models / "frozen.zip"),
            "--env",
            f"issue13test/{space}-v0",
            "--noise",
            "gaussian",
            "--sigma",
            "0.1",
            "--keys",
            "obs",
            "--out",
            str(tmp_path / "o"),
        ],
        needle,
        "supports",
    )
    assert not (tmp_path / "o" / "report.json").exists()


def test_frozenlake_discrete_observation_refused(models, tmp_path, capsys):
    """Used to crash with "Class values must be non-negative" (exit 1)."""
    _refused(
        capsys,
        [
            "--model",
            str(models / "frozen.zip"),
            "--env",
            "FrozenLake-v1",
            "--noise",
            "gaussian",
            "--sigma",
            "0.1",
            "--keys",
            "obs",
            "--out",
            str(tmp_path / "o"),
        ],
        "Discrete(16)",
        "supports",
    )
    # the API refuses too, whatever the entry point
    with pytest.raises(ValueError, match="unsupported observation space"):
        PolicyAdapter(lambda o: o, spaces.Discrete(16), spaces.Discrete(4))
    with pytest.raises(ValueError, match="unsupported action space"):
        PolicyAdapter(lambda o: o, spaces.Box(-1, 1, (2,)), spaces.MultiDiscrete([2, 2]))


def test_top_k_on_continuous_model_refused_before_any_work(models, tmp_path, capsys):
    start = time.perf_counter()
    _refused(
        capsys,
        [
            "--model",
            str(models / "dense.zip"),
            "--env",
            "reengage/ContinuousSeekDense-v0",
            "--top-k",
            "2",
            "--states",
            "50",
            "--out",
            str(tmp_path / "o"),
        ],
        "--top-k",
        "Box",
    )
    assert time.perf_counter() - start < 10  # the old code certified 50 states first, then raised KeyError
    assert not (tmp_path / "o" / "report.json").exists()


@pytest.mark.parametrize(
    "argv,needles",
    [
        (["--env", "reengage/NoSuchEnv-v0"], ["unknown environment id", "reengage/ContinuousSeek-v0"]),
        (["--env", "reengage/ContinuousSeekDense-v0", "--env-kwargs", "{d: 5"], ["--env-kwargs", "JSON"]),
        (["--env", "reengage/ContinuousSeekDense-v0", "--env-kwargs", "[5]"], ["--env-kwargs", "JSON object"]),
        (["--env", "reengage/ContinuousSeekDense-v0", "--env-kwargs", '{"dd": 5}'], ["cannot make", "dd"]),
        (["--env", "reengage/ContinuousSeekDense-v0", "--states", "0"], ["--states", "positive integer"]),
        (["--env", "reengage/ContinuousSeekDense-v0", "--alpha", "1.5"], ["--alpha", "(0, 1)"]),
    ],
)
def test_bad_cli_input_exits_2(models, tmp_path, capsys, argv, needles):
    _refused(capsys, ["--model", str(models / "dense.zip"), "--out", str(tmp_path / "o"), *argv], *needles)


def test_non_zip_model_and_file_as_out_refused(models, tmp_path, capsys):
    env = ["--env", "reengage/ContinuousSeekDense-v0"]
    _refused(capsys, ["--model", str(models / "notazip.zip"), *env, "--out", str(tmp_path / "o")], "not a zip")
    _refused(capsys, ["--model", str(models / "dense.zip"), *env, "--out", str(models / "afile")], "is a file")
    _refused(capsys, ["--model", str(models / "dense.zip"), *env, "--out", str(models / "afile" / "sub")], "is a file")
    _refused(capsys, ["--model", str(tmp_path / "missing.zip"), *env, "--out", str(tmp_path / "o")], "does not exist")


def test_model_on_another_env_refused_unless_forced(models, tmp_path, capsys):
    """A dense-trained model certified on the sparse env was not noticed: the sidecar now records the env."""
    sidecar = json.loads((models / "dense.smoothing.json").read_text())
    assert sidecar["env_id"] == "reengage/ContinuousSeekDense-v0" and sidecar["env_kwargs"] == {}
    argv = [
        "--model",
        str(models / "dense.zip"),
        "--env",
        "reengage/ContinuousSeek-v0",
        "--states",
        "1",
        "--n",
        "100",
        "--episodes",
        "5",
        "--eps",
        "0.01",
        "--attack-steps",
        "1",
        "--attack-n",
        "50",
        "--out",
        str(tmp_path / "o"),
    ]
    _refused(capsys, argv, "reengage/ContinuousSeekDense-v0", "--force")
    _refused(
        capsys,
        [
            "--model",
            str(models / "dense.zip"),
            "--env",
            "reengage/ContinuousSeekDense-v0",
            "--env-kwargs",
            '{"d": 5}',
            "--out",
            str(tmp_path / "o"),
        ],
        "--force",
    )
    assert main([*argv, "--force"]) == 0
    assert json.loads((tmp_path / "o" / "report.json").read_text())["env"] == "reengage/ContinuousSeek-v0"


@pytest.mark.slow  # a fresh interpreter imports torch: 5-20 s on the shared machine
def test_subprocess_exit_code_and_no_traceback(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "reengage.certify",
            "--model",
            "x.zip",
            "--env",
            "NoSuch-v9",
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "unknown environment id 'NoSuch-v9'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_forced_env_with_other_shapes_refused_before_work(models, tmp_path, capsys):
    _refused(
        capsys,
        [
            "--model",
            str(models / "dense.zip"),
            "--env",
            "reengage/ContinuousSeekDense-v0",
            "--env-kwargs",
            '{"d": 3}',
            "--force",
            "--out",
            str(tmp_path / "o"),
        ],
        "reads observations",
        "--env-kwargs",
    )


@pytest.mark.parametrize(
    "flags, needles",
    [
        (["--sigma", "0.3"], ["--sigma 0.3 (saved: 0.1)", "the sidecar", "give --noise"]),
        (["--keys", "observation"], ["--keys observation (saved: observation achieved_goal)"]),
        (["--sigma", "0.3", "--null-value", "0.0"], ["--sigma 0.3 (saved: 0.1); --null-value 0.0 (saved: 0.5) differ"]),
    ],
)
def test_smoothing_flags_that_differ_from_the_sidecar_are_refused_not_ignored(models, tmp_path, capsys, flags, needles):
    out = tmp_path / "o"
    _refused(
        capsys,
        ["--model", str(models / "dense.zip"), "--env", "reengage/ContinuousSeekDense-v0", *flags, "--out", str(out)],
        *needles,
    )
    assert not out.exists()  # refused before any work


def test_smoothing_flags_equal_to_the_sidecar_are_accepted(models, tmp_path, capsys):
    argv = [
        "--model",
        str(models / "dense.zip"),
        "--env",
        "reengage/ContinuousSeekDense-v0",
        "--sigma",
        "0.1",
        "--keys",
        "observation",
        "achieved_goal",
        "--states",
        "1",
        "--n",
        "100",
        "--episodes",
        "5",
        "--eps",
        "0.01",
        "--attack-steps",
        "1",
        "--attack-n",
        "50",
        "--out",
        str(tmp_path / "o"),
    ]
    assert main(argv) == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "o" / "report.json").read_text())["smoothing"]["sigma"] == 0.1
