"""Smoothing noise: what is drawn, on which observation keys, and the checks that keep it sound.

A :class:`SmoothingConfig` names one smoothing distribution applied in the RAW observation space (before any
normaliser) to chosen keys of a Dict observation (by default the state part, ``observation`` and
``achieved_goal``; never the goal unless asked):

- ``"gaussian"``: i.i.d. isotropic N(0, sigma^2) added to every chosen coordinate (l2 threat model; Cohen et al.).
  Correlated or non-isotropic additive noise is refused: seed 004, Prop. 3.1 builds a base classifier for which
  noise with the right marginals but correlated coordinates breaks the certificate.
- ``"ablation"``: randomized ablation (seed 004, Ch. 2): keep ``retain`` of the d chosen features, chosen uniformly
  without replacement, and replace the rest with ``null_value`` (l0 threat model).
- ``"deterministic_ablation"``: seed 004, Sec. 4.5: a fixed partition of the d features into ``groups`` groups;
  sample g keeps only group g. Enumerating the ``groups`` samples gives an exact certificate.

The chosen keys are flattened and concatenated in the order given; this concatenated vector is the space of the
threat model (its l2 norm, its number of changed features). When a key duplicates another (ContinuousSeek and bit
flipping report the state as both ``observation`` and ``achieved_goal``), a change of the state counts in both
copies: sqrt(2) times its l2 norm, twice its number of changed bits.

Training (a run's ``observation_noise``) and certification (:mod:`reengage.robustness`) read the same settings,
so this module sits below both packages and imports neither.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

NOISE_KINDS = ("gaussian", "ablation", "deterministic_ablation")
DEFAULT_KEYS = ("observation", "achieved_goal")
SIDECAR_SUFFIX = ".smoothing.json"


@dataclass
class SmoothingConfig:
    """Settings of one smoothing distribution; saved as a JSON sidecar next to the model."""

    kind: str = "gaussian"
    sigma: float | None = None
    keys: tuple[str, ...] = DEFAULT_KEYS
    retain: int | None = None
    groups: int | None = None
    null_value: float = 0.5
    partition_seed: int = 0
    covariance: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in NOISE_KINDS:
            raise ValueError(f"kind must be one of {NOISE_KINDS}, got {self.kind!r}")
        if isinstance(self.keys, str):
            self.keys = (self.keys,)
        self.keys = tuple(self.keys)
        if len(self.keys) == 0:
            raise ValueError("keys must name at least one observation key to smooth")
        if len(set(self.keys)) != len(self.keys):
            raise ValueError(f"keys must not repeat (a key smoothed twice gets correlated noise), got {self.keys}")
        if self.kind == "gaussian":
            self.sigma = self._isotropic_sigma(self.sigma, self.covariance)
            self.covariance = None
        else:
            if self.sigma is not None or self.covariance is not None:
                raise ValueError(f"sigma/covariance belong to kind='gaussian', not kind={self.kind!r}")
        if self.kind == "ablation":
            if self.retain is None or int(self.retain) != self.retain or self.retain < 1:
                raise ValueError(f"kind='ablation' needs retain (features kept per sample) >= 1, got {self.retain!r}")
            self.retain = int(self.retain)
        if self.kind == "deterministic_ablation":
            if self.groups is None or int(self.groups) != self.groups or self.groups < 1:
                raise ValueError(f"kind='deterministic_ablation' needs groups >= 1, got {self.groups!r}")
            self.groups = int(self.groups)
        if not np.isfinite(self.null_value):
            raise ValueError(f"null_value must be finite, got {self.null_value!r}")

    @staticmethod
    def _isotropic_sigma(sigma: Any, covariance: Any) -> float:
        """Accept a scalar sigma (or a covariance equal to sigma^2 I); refuse anything correlated."""
        if covariance is not None:
            cov = np.atleast_2d(np.asarray(covariance, dtype=np.float64))
            if cov.shape[0] != cov.shape[1]:
                raise ValueError(f"covariance must be square, got shape {cov.shape}")
            off = cov - np.diag(np.diag(cov))
            if np.any(np.abs(off) > 1e-12):
                raise ValueError(
                    "correlated additive noise is refused: it voids the certificate (seed 004, Prop. 3.1); use "
                    "independent isotropic Gaussian noise (a scalar sigma)"
                )
            diag = np.diag(cov)
            if np.ptp(diag) > 1e-12 * max(1.0, diag.max()):
                raise ValueError(
                    "non-isotropic Gaussian noise is refused: the l2 certificate assumes one sigma for every "
                    f"coordinate, got variances ranging over [{diag.min()}, {diag.max()}]"
                )
            cov_sigma = float(np.sqrt(diag[0]))
            if sigma is not None and abs(float(sigma) - cov_sigma) > 1e-12:
                raise ValueError(f"sigma={sigma} disagrees with the covariance (sigma {cov_sigma})")
            sigma = cov_sigma
        if sigma is None:
            raise ValueError("kind='gaussian' needs sigma > 0")
        arr = np.asarray(sigma, dtype=np.float64)
        if arr.ndim > 0:
            if arr.size == 0 or np.ptp(arr) > 0:
                raise ValueError(f"sigma must be one scalar for all coordinates (isotropic noise), got {sigma!r}")
            arr = arr.reshape(-1)[0]
        value = float(arr)
        if not (value > 0 and np.isfinite(value)):
            raise ValueError(f"sigma must be a positive finite number, got {sigma!r}")
        return value

    # -- layout ------------------------------------------------------------------------------
    def key_sizes(self, observation_space: spaces.Space) -> dict[str, int]:
        """Number of features of each smoothed key; raises ValueError for keys the space lacks."""
        if isinstance(observation_space, spaces.Dict):
            sizes = {}
            for key in self.keys:
                if key not in observation_space.spaces:
                    raise ValueError(
                        f"key {key!r} is not in the observation space; valid keys: {list(observation_space.spaces)}"
                    )
                sizes[key] = int(np.prod(observation_space.spaces[key].shape))
            return sizes
        if self.keys != ("obs",):
            raise ValueError(f"a non-Dict observation space has the single key 'obs'; got keys={self.keys}")
        return {"obs": int(np.prod(observation_space.shape))}

    def n_features(self, observation_space: spaces.Space) -> int:
        """Dimension d of the concatenated smoothed vector (the space of the threat model)."""
        d = sum(self.key_sizes(observation_space).values())
        if self.kind == "ablation" and self.retain > d:
            raise ValueError(f"retain={self.retain} exceeds the {d} smoothed features")
        if self.kind == "deterministic_ablation" and self.groups > d:
            raise ValueError(f"groups={self.groups} exceeds the {d} smoothed features (a group would be empty)")
        return d

    def partition(self, d: int) -> np.ndarray:
        """Group index of each of the d features: a fixed, seeded balanced assignment (Sec. 4.5 'fixed offset')."""
        if self.kind != "deterministic_ablation":
            raise ValueError("partition() exists only for kind='deterministic_ablation'")
        perm = np.random.default_rng(self.partition_seed).permutation(d)
        groups = np.empty(d, dtype=np.int64)
        groups[perm] = np.arange(d) % self.groups
        return groups

    # -- persistence -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("covariance")
        out["keys"] = list(self.keys)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SmoothingConfig:
        known = {"kind", "sigma", "keys", "retain", "groups", "null_value", "partition_seed"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown smoothing settings {sorted(unknown)}; valid: {sorted(known)}")
        values: dict[str, Any] = {k: (tuple(v) if k == "keys" else v) for k, v in data.items()}
        return cls(**values)


def sidecar_path(model_path: str | Path) -> Path:
    """``model.zip`` -> ``model.smoothing.json`` (next to the model)."""
    path = Path(model_path)
    if path.suffix == ".zip":
        path = path.with_suffix("")
    return path.with_name(path.name + SIDECAR_SUFFIX)


def save_sidecar(model_path: str | Path, config: SmoothingConfig, extra: dict[str, Any] | None = None) -> Path:
    """Write the smoothing settings (plus e.g. algorithm class, seed, sample counts) next to the model."""
    payload = {"smoothing": config.to_dict(), **(extra or {})}
    out = sidecar_path(model_path)
    out.write_text(json.dumps(payload, indent=2, sort_keys=True))
    return out


def load_sidecar(model_path: str | Path) -> tuple[SmoothingConfig, dict[str, Any]]:
    """Read what :func:`save_sidecar` wrote; returns the config and the remaining entries."""
    path = sidecar_path(model_path)
    if not path.exists():
        raise ValueError(f"no smoothing sidecar at {path}; save one with save_sidecar(model_path, config)")
    payload = json.loads(path.read_text())
    config = SmoothingConfig.from_dict(payload.pop("smoothing"))
    return config, payload
