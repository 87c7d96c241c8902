"""The table of configuration keys agrees with the code it describes, and every refusal it writes names the key,
the bad value and what is valid."""

from __future__ import annotations

import pytest

import train
from reengage.algorithms import ALGOS
from reengage.experiment.config import resolve_config
from reengage.experiment.config_keys import KEYS, check_config, describe_keys, top_level_keys


def test_every_resolved_configuration_holds_exactly_the_top_level_keys() -> None:
    config = resolve_config("reengage/ContinuousSeek5-v0", "ddpg", 0.2)
    assert set(config) - {"env_id", "algo", "config_file"} == set(top_level_keys())


def test_the_algorithms_of_the_table_are_those_of_the_registry() -> None:
    named = {algo for key in KEYS.values() for algo in key.algos or ()}
    assert named <= set(ALGOS)


def test_the_choices_of_the_agent_options_are_those_the_agents_accept() -> None:
    from reengage.agents.fast.multi_goal import ENCODER_AUTOCAST, GATE_UPDATES
    from reengage.agents.fast.multi_goal_update import ACTOR_ENCODINGS
    from reengage.agents.goal_gradient import DIM_WEIGHTINGS, MODES
    from reengage.agents.td3 import TARGET_DERIVATIVES

    from reengage import losses

    assert KEYS["reengage_mode"].choices == MODES
    assert KEYS["algo_kwargs.reengage_matching"].choices == losses.MATCHINGS
    assert KEYS["algo_kwargs.reengage_dim_weights"].choices == DIM_WEIGHTINGS
    assert KEYS["algo_kwargs.reengage_target_derivative"].choices == TARGET_DERIVATIVES
    assert KEYS["algo_kwargs.gate_update"].choices == GATE_UPDATES
    assert KEYS["algo_kwargs.actor_encoding"].choices == ACTOR_ENCODINGS
    assert KEYS["algo_kwargs.encoder_precision"].choices == tuple(ENCODER_AUTOCAST)


def test_the_agent_options_reach_the_agents_that_take_them() -> None:
    """Each ReenGAGE option of ``algo_kwargs`` is an argument of every algorithm the table says takes it."""
    from reengage.algorithms import algo_spec, import_object
    from reengage.experiment.signature_checks import accepted_arguments

    for key in KEYS.values():
        parent, _, argument = key.name.partition(".")
        if parent != "algo_kwargs" or not argument.startswith(("reengage_", "gate_", "actor_", "encoder_")):
            continue
        for algo in key.algos or tuple(ALGOS):
            spec = algo_spec(algo)
            if spec.refusal is not None:
                continue  # an algorithm that refuses to be built takes no options
            # each trainer's class takes the options the table lets that trainer use
            classes = ([spec.agent] if key.sb3 else []) + (
                [spec.fast_agent] if key.fast_takes(algo) and spec.fast_agent else []
            )
            for path in classes:
                accepted = accepted_arguments(import_object(path))  # type: ignore[arg-type]
                assert accepted is None or argument in accepted, (key.name, algo, path)


def test_the_fast_update_options_are_refused_on_the_stock_trainer() -> None:
    with pytest.raises(ValueError, match="gate_update is an option of the fast trainer's update"):
        check_config({"algo": "multi_ddpg", "trainer": "sb3", "algo_kwargs": {"gate_update": "reference"}})
    check_config({"algo": "multi_ddpg", "trainer": "fast", "algo_kwargs": {"gate_update": "reference"}})


@pytest.mark.parametrize(
    "assignment, message",
    [
        (
            "algo_kwargs.reengage_matching=half",
            "algo_kwargs.reengage_matching='half' is not valid; valid choices: full, one_sided",
        ),
        ("algo_kwargs.reengage_target_derivative=some", "valid choices: total, partial"),
        ("algo_kwargs.reengage_tau=0.5", "algo_kwargs.reengage_tau is an option of dqn; algo 'ddpg' does not take it"),
        ("algo_kwargs.reengage_monitor=1", "algo_kwargs.reengage_monitor=1 has the wrong type; expected bool"),
        ("reengage_diagnostics=-5", "reengage_diagnostics=-5 is out of range; reengage_diagnostics must be >= 0"),
        ("her.n_sampled_goal=.nan", "her.n_sampled_goal=nan is not a finite number; her.n_sampled_goal must be >= 0"),
    ],
)
def test_agent_options_are_checked_when_the_configuration_is_resolved(assignment: str, message: str) -> None:
    with pytest.raises(ValueError) as refused:
        resolve_config("reengage/ContinuousSeek5-v0", "ddpg", 0.2, assignments=[assignment])
    assert message in str(refused.value)


def test_a_configuration_saved_before_a_key_existed_is_not_refused_for_lacking_it() -> None:
    config = resolve_config("reengage/ContinuousSeek5-v0", "ddpg", 0.2)
    for key in ("trainer", "n_envs", "obs_normalization", "action_l2"):
        del config[key]
    check_config(config)


def test_list_keys_prints_every_key_with_what_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert train.main(["--list-keys"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == describe_keys() and [line.split()[0] for line in lines] == list(KEYS)
    by_key = {line.split()[0]: line for line in lines}
    assert "in (0, 1]" in by_key["tau"]
    assert "one of full, one_sided" in by_key["algo_kwargs.reengage_matching"]
    assert "algos ddpg, td3" in by_key["action_l2"] and "trainer" not in by_key["action_l2"]
    assert "trainer fast for ddpg, td3, sb3 for the others" in by_key["obs_normalization"]
