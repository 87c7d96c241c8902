"""The configuration's path from a run into its agent: the algorithm is resolved once, the extensions read once."""

from __future__ import annotations

import pytest

from reengage.experiment import build
from reengage.experiment.config import resolve_config


@pytest.mark.parametrize(
    "env_id, algo, assignments",
    [
        ("reengage/ContinuousSeek5-v0", "ddpg", []),
        ("reengage/BitFlipping20-v0", "dqn", []),
        ("FetchReach-v4", "ddpg", []),  # the robotics recipe and the observation normaliser: both extensions
    ],
)
def test_build_agent_resolves_the_algorithm_and_its_extensions_once(monkeypatch, env_id, algo, assignments):
    if env_id.startswith("Fetch"):
        pytest.importorskip("gymnasium_robotics")
    config = resolve_config(env_id, algo, 0.2, 2000, ["learning_starts=100", "buffer_size=1000", *assignments])
    calls = {"algo_spec": 0, "extensions_of": 0}

    def counted(name, function):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(build, "algo_spec", counted("algo_spec", build.algo_spec))
    monkeypatch.setattr(build, "extensions_of", counted("extensions_of", build.extensions_of))
    env = build.make_training_env(config, seed=0)
    try:
        agent = build.build_agent(config, env, seed=0)
    finally:
        env.close()
    assert calls == {"algo_spec": 1, "extensions_of": 1}
    assert agent.reengage_alpha == 0.2
    if env_id.startswith("Fetch"):
        from reengage.agents.normalizer import ObservationNormalizerMixin
        from reengage.agents.recipe import BaselinesRecipeMixin

        assert isinstance(agent, BaselinesRecipeMixin) and isinstance(agent, ObservationNormalizerMixin)
