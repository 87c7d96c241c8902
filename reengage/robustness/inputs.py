"""What the certify CLI is asked to certify: environment, model, run folder; every bad input is a ValueError.

Each function checks one input and raises ``ValueError`` with a one-line message naming the bad value and the
valid choices, so that :func:`reengage.robustness.cli.main` can exit with code 2 and no traceback, before any
sample is drawn.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym

from .support import check_action_space, check_observation_space

RUN_CONFIG = "config.yaml"
RUN_MODEL = "model.zip"


def parse_env_kwargs(text: str) -> dict[str, Any]:
    """``--env-kwargs``: a JSON object."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"--env-kwargs {text!r} is not valid JSON ({error.msg}); give a JSON object such as "
                         "'{\"d\": 5}'") from None
    if not isinstance(value, dict):
        raise ValueError(f"--env-kwargs must be a JSON object such as '{{\"d\": 5}}', got {text!r}")
    return value


def make_env(env_id: str, env_kwargs: dict[str, Any]) -> gym.Env:
    """``gym.make`` with unknown ids and bad keyword arguments turned into ValueErrors; spaces checked."""
    import reengage.envs  # noqa: F401  (registers the reengage/ ids)

    if ":" not in env_id and env_id not in gym.registry:  # "module:Id" ids are imported by gym.make
        ours = sorted(k for k in gym.registry if k.startswith("reengage/"))
        raise ValueError(f"unknown environment id {env_id!r}; registered reengage ids: {', '.join(ours)} (or any "
                         "other registered gymnasium id)")
    try:
        env = gym.make(env_id, **env_kwargs)
    except Exception as error:  # noqa: BLE001  (whatever the constructor rejects is bad input: exit 2)
        raise ValueError(f"cannot make {env_id} with --env-kwargs {json.dumps(env_kwargs)}: {error}") from None
    check_observation_space(env.observation_space)
    check_action_space(env.action_space)
    return env


def check_model_file(path: Path) -> Path:
    """An existing SB3 model zip (``.zip`` added when missing, as SB3 does)."""
    if path.suffix != ".zip":
        path = path.with_name(path.name + ".zip")
    if not path.is_file():
        raise ValueError(f"model file {path} does not exist (give the .zip written by model.save)")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"model file {path} is not a zip archive; give the .zip written by a stable-baselines3 "
                         "model.save")
    with zipfile.ZipFile(path) as archive:
        if "data" not in archive.namelist():
            raise ValueError(f"model file {path} is a zip but not a stable-baselines3 model (no 'data' entry)")
    return path


def check_out_dir(path: Path) -> Path:
    """``--out``: a folder (created) that is not an existing file and does not sit under a file."""
    for part in [path, *path.parents]:
        if part.exists() and not part.is_dir():
            raise ValueError(f"--out {path}: {part} is a file, not a folder; choose a folder path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"--out {path}: cannot create the folder ({error.strerror})") from None
    return path


@dataclass
class RunFolder:
    """What a run folder written by ``train.py --logdir DIR`` says about its model."""

    path: Path
    config: dict[str, Any]
    model: Path
    env_id: str
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    observation_noise: dict[str, Any] | None = None


def read_run_folder(path: str | Path) -> RunFolder:
    """Read ``config.yaml`` (env id, env kwargs, observation noise, algo) and locate ``model.zip``."""
    import yaml

    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"--run {path} is not a folder; give the --logdir of a train.py run")
    config_file = path / RUN_CONFIG
    if not config_file.is_file():
        raise ValueError(f"--run {path} holds no {RUN_CONFIG}; give the --logdir of a train.py run")
    try:
        config = yaml.safe_load(config_file.read_text())
    except yaml.YAMLError as error:
        raise ValueError(f"{config_file} is not valid YAML: {error}") from None
    if not isinstance(config, dict) or "env_id" not in config:
        raise ValueError(f"{config_file} has no env_id; it was not written by train.py")
    model = check_model_file(path / RUN_MODEL) if (path / RUN_MODEL).exists() else None
    if model is None:
        raise ValueError(f"--run {path} holds no {RUN_MODEL}: the run has not finished (resume it with train.py)")
    return RunFolder(path, config, model, str(config["env_id"]), dict(config.get("env_kwargs") or {}),
                     dict(config["observation_noise"]) if config.get("observation_noise") else None)


def recorded_env(model_path: Path, sidecar_extra: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The environment a model belongs to: its sidecar's ``env_id`` / ``env_kwargs``, else the ``config.yaml``
    of the run folder it sits in; None when nothing records it."""
    if "env_id" in sidecar_extra:
        return str(sidecar_extra["env_id"]), dict(sidecar_extra.get("env_kwargs") or {})
    config_file = model_path.parent / RUN_CONFIG
    if config_file.is_file():
        import yaml

        try:
            config = yaml.safe_load(config_file.read_text())
        except yaml.YAMLError:
            return None
        if isinstance(config, dict) and "env_id" in config:
            return str(config["env_id"]), dict(config.get("env_kwargs") or {})
    return None


def check_same_env(recorded: tuple[str, dict[str, Any]] | None, env_id: str, env_kwargs: dict[str, Any],
                   force: bool) -> None:
    """Refuse to certify on another environment than the recorded one unless ``force``."""
    if recorded is None or force:
        return
    rec_id, rec_kwargs = recorded
    if rec_id != env_id or rec_kwargs != env_kwargs:
        raise ValueError(
            f"the model belongs to {rec_id} with env kwargs {json.dumps(rec_kwargs, sort_keys=True)} (recorded in "
            f"its sidecar or run folder), not {env_id} with {json.dumps(env_kwargs, sort_keys=True)}; certify on "
            "the recorded environment, or pass --force to certify on this one anyway"
        )


def load_model(algo_cls: type, model_path: Path, env_factories: list[Any]) -> Any:
    """Load an SB3 model: without an env first, then with each candidate env (HER buffers need one, and a model
    trained under observation noise needs the noise-wrapped env's spaces)."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    errors = []
    for factory in [None, *env_factories]:
        try:
            env = None if factory is None else DummyVecEnv([factory])
            return algo_cls.load(model_path, env=env, device="cpu")
        except Exception as error:  # noqa: BLE001  (any failure to load is a bad model file or setting: exit 2)
            errors.append(f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
    raise ValueError(f"cannot load {model_path} as {algo_cls.__name__} ({'; '.join(errors)}); check --algo and "
                     "--env (or use --run with the training run folder)")


def _shapes(space: gym.spaces.Space) -> dict[str, tuple[int, ...]]:
    if isinstance(space, gym.spaces.Dict):
        return {k: tuple(s.shape) for k, s in space.spaces.items()}
    return {"obs": tuple(space.shape)}


def check_model_fits_env(model_obs: gym.spaces.Space, model_act: gym.spaces.Space, env: gym.Env, env_id: str) -> None:
    """The env must produce the observations the model reads and take the actions it outputs (bounds may differ:
    a noise wrapper widens them)."""
    if _shapes(model_obs) != _shapes(env.observation_space):
        raise ValueError(f"the model reads observations {_shapes(model_obs)} but {env_id} gives "
                         f"{_shapes(env.observation_space)}; certify on the model's environment (see --env-kwargs)")
    if type(model_act) is not type(env.action_space) or model_act.shape != env.action_space.shape or (
        isinstance(model_act, gym.spaces.Discrete) and model_act.n != env.action_space.n
    ):
        raise ValueError(f"the model outputs actions in {model_act} but {env_id} takes {env.action_space}")
