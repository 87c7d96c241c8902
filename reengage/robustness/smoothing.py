"""The smoothed policy: a trained policy evaluated on noisy copies of its observation, in batches.

:class:`PolicyAdapter` gives one batched, differentiable view of any policy: an SB3 model (DQN -> Q-values,
DDPG/TD3/SAC -> actions in the env's units) or a hand-made torch function. :class:`SmoothedPolicy` draws noise
from a :class:`~reengage.observation_noise.SmoothingConfig` in the raw observation space, pushes the noisy copies
through the network in chunks of ``batch_size``.

Noise streams: every purpose (selection, estimation, the randomised rounding of bounded outputs, attacks, the
confirmation tests of attacks, acting) draws from its own generator, a child of ``numpy.random.SeedSequence(seed)``
spawned once per seed. Selection and estimation samples are therefore independent by construction, even after
:meth:`SmoothedPolicy.reseed`; each :class:`SampleBatch` records its stream and the certificates refuse batches
from the wrong one.

Noise is added in the observation's own floating dtype (float64 observations stay float64, see
:func:`reengage.robustness.support.noise_dtype`); unsupported spaces are refused when the adapter is built.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from reengage.algorithms import algorithm_class, detect_algorithm
from reengage.observation_noise import SmoothingConfig, load_sidecar, save_sidecar

from .support import check_action_space, check_observation_space, noise_dtype

Obs = dict[str, np.ndarray]
_DRAW_IDS = itertools.count(1)
#: the independent noise streams of a SmoothedPolicy (children of one SeedSequence, in this order)
STREAMS = ("selection", "estimation", "rounding", "attack", "test", "policy")


class PolicyAdapter:
    """Batched view of a policy on Dict (or plain, as key ``'obs'``) observations.

    ``forward`` maps a dict of float tensors with a leading batch axis to scores (B, n_actions) for a Discrete
    action space (the base action is the arg-max, ties to the lowest index) or to actions (B, m) in the action
    space's units for a Box action space. It must be differentiable for the PGD attack.
    """

    def __init__(
        self,
        forward: Callable[[dict[str, torch.Tensor]], torch.Tensor],
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: str | torch.device = "cpu",
    ) -> None:
        check_observation_space(observation_space)
        check_action_space(action_space)
        self.forward = forward
        self.observation_space = observation_space
        self.action_space = action_space
        self.device = torch.device(device)
        self.discrete = isinstance(action_space, spaces.Discrete)
        if not self.discrete:
            low, high = action_space.low.astype(np.float64), action_space.high.astype(np.float64)
            if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
                raise ValueError("bounded-output smoothing needs a Box action space with finite low/high")

    @property
    def keys(self) -> tuple[str, ...]:
        if isinstance(self.observation_space, spaces.Dict):
            return tuple(self.observation_space.spaces)
        return ("obs",)

    def tensor_dtype(self, key: str) -> torch.dtype:
        """float64 for keys stored in float64 (their precision is kept up to the network), float32 otherwise."""
        space = (
            self.observation_space.spaces[key]
            if isinstance(self.observation_space, spaces.Dict)
            else self.observation_space
        )
        return torch.float64 if np.dtype(space.dtype) == np.float64 else torch.float32

    def to_tensors(self, batch: Obs) -> dict[str, torch.Tensor]:
        return {
            k: torch.as_tensor(np.asarray(v), dtype=self.tensor_dtype(k), device=self.device) for k, v in batch.items()
        }

    @torch.no_grad()
    def actions(self, batch: dict[str, torch.Tensor]) -> np.ndarray:
        """Base actions of a batch: int array (B,) or float array (B, m) clipped to the action bounds."""
        out = self.forward(batch)
        if self.discrete:
            return out.argmax(dim=-1).cpu().numpy()
        low = torch.as_tensor(self.action_space.low, dtype=out.dtype, device=out.device)
        high = torch.as_tensor(self.action_space.high, dtype=out.dtype, device=out.device)
        return torch.clamp(out.reshape(out.shape[0], -1), low.reshape(-1), high.reshape(-1)).cpu().numpy()

    @classmethod
    def from_sb3(cls, model: Any, device: str | torch.device | None = None) -> PolicyAdapter:
        """Adapter for a stable-baselines3 model (DQN, DDPG/TD3, SAC, TQC and subclasses such as ReenGAGE agents)."""
        policy = model.policy
        policy.set_training_mode(False)
        dev = torch.device(device) if device is not None else policy.device
        if device is not None:
            policy.to(dev)
        obs_space, act_space = policy.observation_space, policy.action_space
        dict_obs = isinstance(obs_space, spaces.Dict)

        def unpack(batch: dict[str, torch.Tensor]) -> Any:
            return batch if dict_obs else batch["obs"]

        if hasattr(policy, "q_net"):  # DQN family: scores are the Q-values

            def forward(batch: dict[str, torch.Tensor]) -> torch.Tensor:
                return policy.q_net(unpack(batch))

        elif hasattr(policy, "actor") and isinstance(act_space, spaces.Box):
            low = torch.as_tensor(act_space.low, dtype=torch.float32, device=dev)
            high = torch.as_tensor(act_space.high, dtype=torch.float32, device=dev)
            # SAC's family (SAC, TQC, CrossQ) samples unless told deterministic=True; TD3's actor takes no such flag
            is_sac = "deterministic" in inspect.signature(policy.actor.forward).parameters
            squash = bool(getattr(policy, "squash_output", True)) or is_sac

            def forward(batch: dict[str, torch.Tensor]) -> torch.Tensor:
                obs = unpack(batch)
                act = policy.actor(obs, deterministic=True) if is_sac else policy.actor(obs)
                # SB3 actors output in [-1, 1]; predict() rescales to the env's bounds the same way
                return low + (act + 1.0) * 0.5 * (high - low) if squash else act

        else:  # any other policy: no gradient, one-hot scores for discrete actions

            def forward(batch: dict[str, torch.Tensor]) -> torch.Tensor:
                with torch.no_grad():
                    act = policy._predict(unpack(batch), deterministic=True)
                if isinstance(act_space, spaces.Discrete):
                    return torch.nn.functional.one_hot(act.long().reshape(-1), int(act_space.n)).float()
                return act.float()

        return cls(forward, obs_space, act_space, device=dev)


@dataclass(frozen=True)
class SampleBatch:
    """Base outputs on ``n`` independent noise draws at one observation.

    ``stream`` names the noise stream the draws came from (one of :data:`STREAMS`, or ``"external"`` for a
    caller's generator); ``draw_id`` numbers the draw.
    """

    draw_id: int
    outputs: np.ndarray
    n: int
    stream: str = "external"


class SmoothedPolicy:
    """A policy smoothed by the noise in ``config``; every draw comes from the seeded generator ``rng``.

    Parameters
    ----------
    policy: an SB3 model or a :class:`PolicyAdapter`.
    config: the smoothing distribution (keys, kind, sigma / retain / groups).
    seed: seeds the noise streams (:data:`STREAMS`): same seed, same certificates.
    batch_size: noise samples per forward pass.
    obs_normalizer: optional function applied to the noisy observation dict before the network (the noise lives
        in the raw space, before any normaliser; e.g. ``vec_normalize.normalize_obs``).
    """

    def __init__(
        self,
        policy: Any,
        config: SmoothingConfig,
        seed: int = 0,
        batch_size: int = 10_000,
        obs_normalizer: Callable[[Obs], Obs] | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        self.adapter = policy if isinstance(policy, PolicyAdapter) else PolicyAdapter.from_sb3(policy, device)
        self.config = config
        self.reseed(seed)
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size = int(batch_size)
        self.obs_normalizer = obs_normalizer
        self.key_sizes = config.key_sizes(self.adapter.observation_space)
        self.d = config.n_features(self.adapter.observation_space)
        self._groups = config.partition(self.d) if config.kind == "deterministic_ablation" else None
        obs_space = self.adapter.observation_space
        self.noise_dtype = noise_dtype(obs_space, config.keys)
        self._shapes = (
            {k: s.shape for k, s in obs_space.spaces.items()}
            if isinstance(obs_space, spaces.Dict)
            else {"obs": obs_space.shape}
        )

    # -- helpers -----------------------------------------------------------------------------
    @property
    def discrete(self) -> bool:
        return self.adapter.discrete

    @property
    def n_actions(self) -> int:
        if not self.discrete:
            raise ValueError("n_actions exists only for Discrete action spaces")
        return int(self.adapter.action_space.n)

    def reseed(self, seed: int) -> None:
        """Restart every noise stream from ``seed`` (the streams stay independent of one another)."""
        self.seed = int(seed)
        children = np.random.SeedSequence(self.seed).spawn(len(STREAMS))
        self.streams = {name: np.random.default_rng(child) for name, child in zip(STREAMS, children)}

    @property
    def rng(self) -> np.random.Generator:
        """The acting stream (policy smoothing draws one fresh noise sample per step from it)."""
        return self.streams["policy"]

    def stream(self, name: str) -> np.random.Generator:
        """The generator of stream ``name`` (one of :data:`STREAMS`)."""
        if name not in self.streams:
            raise ValueError(f"unknown noise stream {name!r}; valid: {STREAMS}")
        return self.streams[name]

    def as_dict(self, obs: Any) -> Obs:
        """Observation (dict or array) -> dict of float arrays without batch axis."""
        if isinstance(obs, dict):
            missing = set(self._shapes) - set(obs)
            if missing:
                raise ValueError(f"observation lacks keys {sorted(missing)}")
            return {k: np.asarray(obs[k], dtype=np.float64).reshape(self._shapes[k]) for k in self._shapes}
        return {"obs": np.asarray(obs, dtype=np.float64).reshape(self._shapes["obs"])}

    def flat_state(self, obs: Obs) -> np.ndarray:
        """The concatenated smoothed features of one observation (the threat-model vector)."""
        return np.concatenate([np.asarray(obs[k], dtype=np.float64).reshape(-1) for k in self.config.keys])

    def with_state(self, obs: Obs, flat: np.ndarray) -> Obs:
        """Copy of ``obs`` whose smoothed keys are replaced by the (batched or single) vector ``flat``."""
        flat = np.asarray(flat)
        batched = flat.ndim == 2
        out = dict(obs)
        start = 0
        for k in self.config.keys:
            size = self.key_sizes[k]
            part = flat[..., start : start + size]
            out[k] = part.reshape((flat.shape[0], *self._shapes[k]) if batched else self._shapes[k])
            start += size
        return out

    def _tile(self, obs: Obs, b: int) -> Obs:
        return {k: np.repeat(np.asarray(v)[None], b, axis=0) for k, v in obs.items()}

    def _noisy_flat(self, flat: np.ndarray, b: int, rng: np.random.Generator) -> np.ndarray:
        cfg = self.config
        if cfg.kind == "gaussian":
            # in the observation's own dtype: a float64 point is not rounded to float32 before the noise
            dtype = self.noise_dtype
            noise = rng.standard_normal((b, self.d), dtype=dtype)
            noise *= dtype.type(cfg.sigma)
            noise += flat.astype(dtype)[None, :]
            return noise
        if cfg.kind == "ablation":
            # k of d kept uniformly without replacement: the k smallest of d i.i.d. uniforms
            keys = rng.random((b, self.d))
            kept = np.argpartition(keys, cfg.retain - 1, axis=1)[:, : cfg.retain]
            out = np.full((b, self.d), cfg.null_value)
            rows = np.arange(b)[:, None]
            out[rows, kept] = flat[kept]
            return out
        group = rng.integers(0, cfg.groups, size=b)
        return self.ablate_groups(flat, group)

    def ablate_groups(self, flat: np.ndarray, group: np.ndarray) -> np.ndarray:
        """Deterministic ablation: row i keeps only the features of group ``group[i]`` (Sec. 4.5)."""
        keep = self._groups[None, :] == np.asarray(group)[:, None]
        return np.where(keep, flat[None, :], self.config.null_value)

    def batch_tensors(self, obs: Obs, flats: np.ndarray | torch.Tensor) -> dict[str, torch.Tensor]:
        """Tensor batch: smoothed keys from the rows of ``flats``, other keys broadcast from ``obs`` (no copy)."""
        dev = self.adapter.device
        x = torch.as_tensor(flats, device=dev)
        b = x.shape[0]
        batch = {}
        for k, v in obs.items():
            if k not in self.key_sizes:
                t = torch.as_tensor(np.asarray(v), dtype=self.adapter.tensor_dtype(k), device=dev)
                batch[k] = t.unsqueeze(0).expand(b, *t.shape)
        start = 0
        for k in self.config.keys:
            size = self.key_sizes[k]
            part = x[:, start : start + size].to(self.adapter.tensor_dtype(k))
            batch[k] = part.reshape(b, *self._shapes[k])
            start += size
        return batch

    def base_outputs_flat(self, obs: Obs, flats: np.ndarray) -> np.ndarray:
        """Base actions on a batch of smoothed-feature vectors (rest of the observation held at ``obs``)."""
        outs = []
        for start in range(0, flats.shape[0], self.batch_size):
            chunk = flats[start : start + self.batch_size]
            if self.obs_normalizer is not None:
                batch = self.with_state(self._tile(obs, chunk.shape[0]), chunk)
                batch = self.adapter.to_tensors(self.obs_normalizer(batch))
            else:
                batch = self.batch_tensors(obs, chunk)
            outs.append(self.adapter.actions(batch))
        return np.concatenate(outs, axis=0)

    # -- sampling ----------------------------------------------------------------------------
    def sample(self, obs: Any, n: int, rng: np.random.Generator | None = None, stream: str = "policy") -> SampleBatch:
        """Base outputs on ``n`` fresh noise draws at ``obs`` from ``stream`` (or a caller's ``rng``)."""
        if int(n) != n or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        if rng is None:
            rng = self.stream(stream)
        else:
            stream = "external"
        obs = self.as_dict(obs)
        flat = self.flat_state(obs)
        outs = []
        for start in range(0, int(n), self.batch_size):
            b = min(self.batch_size, int(n) - start)
            outs.append(self.base_outputs_flat(obs, self._noisy_flat(flat, b, rng)))
        return SampleBatch(draw_id=next(_DRAW_IDS), outputs=np.concatenate(outs, axis=0), n=int(n), stream=stream)

    def counts(self, batch: SampleBatch) -> np.ndarray:
        """Votes per action of a discrete SampleBatch."""
        return np.bincount(batch.outputs.astype(np.int64), minlength=self.n_actions)

    def group_votes(self, obs: Any) -> np.ndarray:
        """Deterministic ablation: base action of each of the ``groups`` ablated copies (exact, no randomness)."""
        if self.config.kind != "deterministic_ablation":
            raise ValueError(f"group_votes needs kind='deterministic_ablation', got {self.config.kind!r}")
        obs = self.as_dict(obs)
        flats = self.ablate_groups(self.flat_state(obs), np.arange(self.config.groups))
        return self.base_outputs_flat(obs, flats)

    def act(self, obs: Any, rng: np.random.Generator | None = None) -> Any:
        """The deployed smoothed policy.

        Gaussian and randomized ablation: policy smoothing (Kumar, Levine, Feizi 2022), the base action on ONE
        fresh noise draw. Deterministic ablation: the exact majority vote of the groups, which is what its
        certificate is about (a random group per step would be another policy).
        """
        if self.config.kind == "deterministic_ablation" and self.discrete:
            return self.smoothed_action(obs)
        out = self.sample(obs, 1, rng).outputs[0]
        return int(out) if self.discrete else out.astype(np.float32)

    def predict(self, obs: Any, state: Any = None, episode_start: Any = None, deterministic: bool = False):
        """SB3-style ``predict`` so the smoothed policy drops into evaluation loops (fresh noise each call)."""
        return self.act(obs), state

    def smoothed_action(self, obs: Any, n: int = 1000, stream: str = "policy") -> Any:
        """Point estimate of the smoothed action: majority vote (ties to the lowest index) or mean action.

        Exact for deterministic ablation; otherwise a Monte Carlo estimate from ``n`` draws of ``stream``.
        """
        if self.config.kind == "deterministic_ablation" and self.discrete:
            return int(np.argmax(np.bincount(self.group_votes(obs), minlength=self.n_actions)))
        batch = self.sample(obs, n, stream=stream)
        if self.discrete:
            return int(np.argmax(self.counts(batch)))
        return batch.outputs.mean(axis=0)


# -- saving and loading --------------------------------------------------------------------------
def save_smoothed(
    model: Any,
    path: str | Path,
    config: SmoothingConfig,
    seed: int,
    env_id: str | None = None,
    env_kwargs: dict[str, Any] | None = None,
    **extra: Any,
) -> Path:
    """Save an SB3 model and its smoothing settings (sidecar ``<name>.smoothing.json``) side by side.

    ``env_id`` / ``env_kwargs`` record the environment the model belongs to: the certify CLI refuses to certify
    it on another one unless forced.
    """
    path = Path(path)
    model.save(path)
    zip_path = path if path.suffix == ".zip" else path.with_name(path.name + ".zip")
    if env_id is not None:
        extra = {**extra, "env_id": env_id, "env_kwargs": dict(env_kwargs or {})}
    save_sidecar(zip_path, config, {"algorithm": type(model).__name__, "seed": int(seed), **extra})
    return zip_path


def load_smoothed(
    path: str | Path, env: Any = None, seed: int | None = None, algorithm: str | None = None, **kwargs: Any
) -> SmoothedPolicy:
    """Load a model saved by :func:`save_smoothed`; the same seed gives the same certificates."""
    path = Path(path)
    zip_path = path if path.suffix == ".zip" else path.with_name(path.name + ".zip")
    config, extra = load_sidecar(zip_path)
    name = algorithm or extra.get("algorithm") or detect_algorithm(zip_path)
    model = algorithm_class(name).load(zip_path, env=env, device="cpu")
    return SmoothedPolicy(model, config, seed=extra.get("seed", 0) if seed is None else seed, **kwargs)
