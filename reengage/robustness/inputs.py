"""What the certify CLI is asked to certify: environment, model, training run; every bad input is a ValueError.

Each function checks one input and raises ``ValueError`` with a one-line message naming the bad value and the
valid choices, so that :func:`reengage.certify.main` can exit with code 2 and no traceback, before any sample is
drawn. A training run is read through :class:`TrainingRun`: this package names what it needs of one, and the
run folder of :mod:`reengage.experiment.run_folder` provides it (the certify command opens it).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym

from .support import check_action_space, check_observation_space


class TrainingRun(Protocol):
    """The run that trained a model, as certification reads it: its environment, training noise, model class and
    model file. :class:`reengage.experiment.run_folder.RunFolder` is one."""

    @property
    def path(self) -> Path: ...

    @property
    def env_id(self) -> str: ...

    @property
    def env_kwargs(self) -> dict[str, Any]: ...

    @property
    def observation_noise(self) -> dict[str, Any] | None: ...

    @property
    def model_file(self) -> Path: ...

    def agent_class(self) -> type: ...

    def make_env(self, noise_seed: int | None = None, render_mode: str | None = None) -> gym.Env: ...


def parse_env_kwargs(text: str) -> dict[str, Any]:
    """``--env-kwargs``: a JSON object."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"--env-kwargs {text!r} is not valid JSON ({error.msg}); give a JSON object such as '{{\"d\": 5}}'"
        ) from None
    if not isinstance(value, dict):
        raise ValueError(f"--env-kwargs must be a JSON object such as '{{\"d\": 5}}', got {text!r}")
    return value


def make_env(env_id: str, env_kwargs: dict[str, Any]) -> gym.Env:
    """``gym.make`` with unknown ids and bad keyword arguments turned into ValueErrors; spaces checked."""
    import reengage.envs  # noqa: F401  (registers the reengage/ ids)

    if ":" not in env_id and env_id not in gym.registry:  # "module:Id" ids are imported by gym.make
        ours = sorted(k for k in gym.registry if k.startswith("reengage/"))
        raise ValueError(
            f"unknown environment id {env_id!r}; registered reengage ids: {', '.join(ours)} (or any "
            "other registered gymnasium id)"
        )
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
        raise ValueError(
            f"model file {path} is not a zip archive; give the .zip written by a stable-baselines3 model.save"
        )
    with zipfile.ZipFile(path) as archive:
        if "data" not in archive.namelist():
            raise ValueError(f"model file {path} is a zip but not a stable-baselines3 model (no 'data' entry)")
    return path


def check_out_dir(path: Path) -> Path:
    """``--out``: a folder (created) that is not an existing file and does not sit under a file.

    A folder the system refuses to make (permissions, a read-only or full disk, a name too long) raises the
    ``OSError``, the parents made for it removed again; ``python -m reengage.certify`` reports it in one line."""
    from reengage.file_faults import make_folders

    for part in [path, *path.parents]:
        if part.exists() and not part.is_dir():
            raise ValueError(f"--out {path}: {part} is a file, not a folder; choose a folder path")
    make_folders(path)
    return path


def recorded_env(sidecar_extra: dict[str, Any], training_run: TrainingRun | None) -> tuple[str, dict[str, Any]] | None:
    """The environment a model belongs to: its sidecar's ``env_id`` / ``env_kwargs``, else that of the run that
    trained it; None when nothing records it."""
    if "env_id" in sidecar_extra:
        return str(sidecar_extra["env_id"]), dict(sidecar_extra.get("env_kwargs") or {})
    if training_run is not None:
        return training_run.env_id, training_run.env_kwargs
    return None


def check_same_env(
    recorded: tuple[str, dict[str, Any]] | None, env_id: str, env_kwargs: dict[str, Any], force: bool
) -> None:
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


def load_model(algo_cls: type[Any], model_path: Path, env_factories: list[Any]) -> Any:
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
    raise ValueError(
        f"cannot load {model_path} as {algo_cls.__name__} ({'; '.join(errors)}); check --algo and "
        "--env (or use --run with the training run folder)"
    )


def _shapes(space: gym.spaces.Space) -> dict[str, tuple[int, ...]]:
    if isinstance(space, gym.spaces.Dict):
        return {k: tuple(s.shape) for k, s in space.spaces.items()}
    return {"obs": tuple(space.shape)}


def check_model_fits_env(model_obs: gym.spaces.Space, model_act: gym.spaces.Space, env: gym.Env, env_id: str) -> None:
    """The env must produce the observations the model reads and take the actions it outputs (bounds may differ:
    a noise wrapper widens them)."""
    if _shapes(model_obs) != _shapes(env.observation_space):
        raise ValueError(
            f"the model reads observations {_shapes(model_obs)} but {env_id} gives "
            f"{_shapes(env.observation_space)}; certify on the model's environment (see --env-kwargs)"
        )
    if (
        type(model_act) is not type(env.action_space)
        or model_act.shape != env.action_space.shape
        or (isinstance(model_act, gym.spaces.Discrete) and model_act.n != env.action_space.n)
    ):
        raise ValueError(f"the model outputs actions in {model_act} but {env_id} takes {env.action_space}")
