"""Certified robustness of trained policies by smoothing their observations.

Modules (one job each):

- :mod:`.stats`: Clopper-Pearson, simultaneous (Bonferroni) bounds, DKW, Hoeffding, sample sizes.
- :mod:`.smoothing`: :class:`PolicyAdapter` (SB3 model or torch function), :class:`SmoothedPolicy` (batched noise
  draws), save/load of a model with its smoothing settings.
- :mod:`.certificates`: per-state certificates (Cohen l2, relaxed set / top-k, l0 randomized and deterministic
  ablation, bounded-output l2 intervals for continuous actions).
- :mod:`.episode`: policy-smoothing certificates of success and return against a total budget B.
- :mod:`.population`: seed 002 population estimates with an attack bracket; :mod:`.attacks`: PGD, Hamming and
  the tests that confirm a break.
- :mod:`.ranges`: return ranges from the environment's declared ``reward_range`` or the user, never guessed.
- :mod:`.support`: the observation / action spaces smoothing supports (others refused up front), noise dtype.
- :mod:`.inputs`: the certify CLI's inputs (env id, kwargs, model file, recorded env) as ValueErrors, and
  :class:`~.inputs.TrainingRun`: what certification reads of the run that trained a model.
- :mod:`.cli`: the certify command's procedure (``python -m reengage.certify``, which adds ``--run DIR``: a
  training run's folder), :mod:`.report` (docs/robustness.md experiment).

The smoothing settings (:class:`SmoothingConfig`, its JSON sidecar) and the wrappers that train under the same
noise are shared with training, so they live below this package, in :mod:`reengage.observation_noise` and
:mod:`reengage.noise_wrapper`; they are re-exported here.
"""

from reengage.noise_wrapper import (
    AblationObservationNoise,
    GaussianObservationNoise,
    SmoothingNoiseWrapper,
    wrap_with_noise,
)
from reengage.observation_noise import SmoothingConfig, load_sidecar, save_sidecar

from .certificates import (
    Certificate,
    certify_continuous_l2,
    certify_discrete_l2,
    certify_l0_deterministic,
    certify_l0_randomized,
    certify_relaxed,
)
from .episode import EpisodeCertificate, certify_episodes, certify_return, certify_success
from .population import PopulationEstimate, population_estimate, sample_states
from .smoothing import PolicyAdapter, SampleBatch, SmoothedPolicy, load_smoothed, save_smoothed

__all__ = [
    "AblationObservationNoise",
    "Certificate",
    "EpisodeCertificate",
    "GaussianObservationNoise",
    "PolicyAdapter",
    "PopulationEstimate",
    "SampleBatch",
    "SmoothedPolicy",
    "SmoothingConfig",
    "SmoothingNoiseWrapper",
    "certify_continuous_l2",
    "certify_discrete_l2",
    "certify_episodes",
    "certify_l0_deterministic",
    "certify_l0_randomized",
    "certify_relaxed",
    "certify_return",
    "certify_success",
    "load_sidecar",
    "load_smoothed",
    "population_estimate",
    "sample_states",
    "save_sidecar",
    "save_smoothed",
    "wrap_with_noise",
]
