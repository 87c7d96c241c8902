"""The baselines' robotics recipe on the fast path: observation normaliser (raw-goal chain rule), target clipping,
action L2, random actions and App. G.4's weights, in the hand-written and the autograd forms, against each other
and against the SB3 path; and a short HandReach run on the fast trainer."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import reengage.envs  # noqa: F401
import torch
from reengage.agents import ReenGAGEDDPG, ReenGAGETD3
from reengage.agents.compose import extended_agent_class
from reengage.agents.fast import FastReenGAGEDDPG, FastReenGAGETD3
from reengage.agents.normalizer import RunningNormalizer, normalizer_policy_kwargs, normalizing_extractors
from stable_baselines3 import HerReplayBuffer
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.noise import NormalActionNoise

ENV_ID = "reengage/ContinuousSeek5-v0"  # goals in [-5, 5]^5
# clips tight enough that some raw goals (|g| > 4) and some normalised ones (|z| > 1.5) are clipped, so both
# "no gradient where a clip is active" branches of the chain rule are exercised
NORMALISER = normalizer_policy_kwargs(clip_obs=4.0, clip_normalized=1.5, std_floor=0.01)
RECIPE = dict(target_value_clip=True, action_l2=1.0, random_action_prob=0.3)
BATCH = 64


def _robotic(cls: type) -> type:
    return extended_agent_class(cls, normalize_observations=True, baselines_recipe=True)


def _agent(cls: type, seed: int = 0, **extra):
    kwargs = dict(
        replay_buffer_class=HerReplayBuffer,
        replay_buffer_kwargs=dict(n_sampled_goal=4, goal_selection_strategy="future"),
        learning_starts=80,
        batch_size=BATCH,
        buffer_size=2000,
        seed=seed,
        gamma=0.9,
        action_noise=NormalActionNoise(np.zeros(5), 0.1 * np.ones(5)),
        policy_kwargs=dict(net_arch=[32, 32], share_features_extractor=False, **NORMALISER),
        **RECIPE,
    )
    kwargs.update(extra)
    return _robotic(cls)("MultiInputPolicy", gym.make(ENV_ID), **kwargs)


def _straddle_zero(agent, batch) -> None:
    """Shift each target critic head so that about half its values at s' are above 0, where the target clip cuts."""
    critic = agent.critic_target
    with torch.no_grad():
        next_actions = agent.actor_target(batch.next_observations)
        features = critic.extract_features(batch.next_observations, critic.features_extractor)
        for q_net in critic.q_networks:
            q_net[-1].bias -= q_net(torch.cat([features, next_actions], dim=1)).median()


def _pair(manual_cls, reference_cls, alpha, **extra):
    """Two agents with the same parameters, normaliser statistics and batch (a few terminal transitions)."""
    first = _agent(manual_cls, reengage_alpha=alpha, **extra)
    first.learn(80)  # random phase: fills the buffer and the normaliser's statistics, trains nothing
    batch = first.replay_buffer.sample(BATCH)
    dones = batch.dones.clone()
    dones[::7] = 1.0
    batch = batch._replace(dones=dones)
    _straddle_zero(first, batch)
    second = _agent(reference_cls, reengage_alpha=alpha, **extra)
    second.policy.load_state_dict(first.policy.state_dict())  # the statistics are buffers of the policy
    second.set_logger(Logger(folder=None, output_formats=[]))
    goal = normalizing_extractors(first.policy)[0].normalizer_for("desired_goal")
    assert goal.stat_count.item() > 0 and torch.all(goal.stat_var != 1.0)
    assert 0 < float((batch.rewards == -1).float().mean()) < 1  # both sides of the sparse mask
    return first, second, batch


def _policy_tensors(agent):
    return {name: tensor.detach().clone() for name, tensor in agent.policy.state_dict().items()}


def _gradients(agent):
    """The last step's gradients of the actor and the critic (None for a network the step did not update)."""
    return {
        f"{prefix}.{name}": None if p.grad is None else p.grad.clone()
        for prefix, module in (("actor", agent.actor), ("critic", agent.critic))
        for name, p in module.named_parameters()
    }


def _assert_same_gradients(a, b):
    assert a.keys() == b.keys()
    assert [name for name in a if a[name] is None] == [name for name in b if b[name] is None]
    assert any(a[name] is not None for name in a)
    _assert_close(
        {k: v for k, v in a.items() if v is not None}, {k: v for k, v in b.items() if v is not None}, atol=1e-7
    )


def _assert_close(a, b, rtol=1e-5, atol=1e-6):
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=rtol, atol=atol, msg=name)


def _clip_shares(agent, batch):
    """Shares of clipped raw goals, clipped normalised goals and clipped target values on the batch."""
    normaliser = normalizing_extractors(agent.policy)[0].normalizer_for("desired_goal")
    goals = batch.observations["desired_goal"]
    normalised = (goals.clamp(-normaliser.clip_obs, normaliser.clip_obs) - normaliser.mean) / normaliser.std
    with torch.no_grad():
        next_actions = agent.actor_target(batch.next_observations)
        critic = agent.critic_target
        features = critic.extract_features(batch.next_observations, critic.features_extractor)
        values = critic.q_networks[0](torch.cat([features, next_actions], dim=1))
    low, high = agent.target_value_range()
    return (
        float((goals.abs() > normaliser.clip_obs).float().mean()),
        float((normalised.abs() > normaliser.clip_normalized).float().mean()),
        float(((values < low) | (values > high)).float().mean()),
    )


def test_the_normalisers_chain_rule_is_autograd_through_its_forward():
    """RunningNormalizer.raw_gradient: the raw-value gradient autograd takes through forward, clips included."""
    normaliser = RunningNormalizer(6, clip_obs=3.0, clip_normalized=1.2, std_floor=0.5)
    generator = torch.Generator().manual_seed(1)
    normaliser.update(2 * torch.randn(500, 6, generator=generator) + 0.3)
    values = 3 * torch.randn(200, 6, generator=generator)
    values[0, 0] = 3.0  # on the raw clip's bound: torch.clamp passes the gradient there
    leaf = values.clone().requires_grad_(True)
    output_grad = torch.randn(200, 6, generator=generator)
    (expected,) = torch.autograd.grad((normaliser(leaf) * output_grad).sum(), leaf)
    got = normaliser.raw_gradient(values, output_grad)
    assert torch.equal(got, expected)
    # the factor is 1/std where no clip is active: not the identity, and 0 on a share of the clipped entries
    assert not torch.allclose(got, output_grad) and 0 < float((got == 0).float().mean()) < 1


@pytest.mark.parametrize("cls", [FastReenGAGEDDPG, FastReenGAGETD3])
@pytest.mark.parametrize("matching", ["full", "one_sided"])
@pytest.mark.parametrize("weights", ["none", "normalised"])
def test_hand_written_robotics_step_equals_the_autograd_step(cls, matching, weights):
    """Normaliser, target clip, action L2 and the term: each step's gradients and the parameters after one and
    four steps (TD3: two actor updates) equal the autograd form's to float rounding."""
    manual, reference, batch = _pair(cls, cls, 0.3, reengage_matching=matching, reengage_dim_weights=weights)
    reference.manual_update = False
    plan = manual._manual_plan()
    assert plan is not None and plan.normalisers is not None and reference._manual_plan() is None
    raw_clipped, normalised_clipped, values_clipped = _clip_shares(manual, batch)
    assert 0 < raw_clipped < 0.5 and 0 < normalised_clipped < 0.9 and 0 < values_clipped < 1
    for step in range(4):
        for agent in (manual, reference):
            agent.replay_buffer.sample = lambda *args, **kwargs: batch
            torch.manual_seed(300 + step)  # TD3's target noise: the same draw on both
            agent.train(1, BATCH)
        # every step's gradients, as the step left them in .grad (the actor's too, on steps that update it)
        _assert_same_gradients(_gradients(manual), _gradients(reference))
        if step == 0:
            _assert_close(_policy_tensors(manual), _policy_tensors(reference))
        for key, value in reference.logger.name_to_value.items():
            if key.startswith("train/") and key != "train/n_updates":
                assert manual.logger.name_to_value[key] == pytest.approx(value, rel=1e-5, abs=1e-8), key
    _assert_close(_policy_tensors(manual), _policy_tensors(reference))
    assert manual.logger.name_to_value["train/reengage_loss"] > 0
    if matching == "one_sided":
        assert manual.logger.name_to_value["train/reengage_masked_fraction"] > 0


@pytest.mark.parametrize("weights", ["none", "normalised"])
def test_fast_robotics_update_equals_the_sb3_paths(weights):
    """DDPG with the whole recipe: three gradient steps of the fast path (hand-written form) and of the SB3 path
    (stock train(), the mixin's optimiser hook, the recipe's forward and gradient hooks) from the same state."""
    fast, stock, batch = _pair(FastReenGAGEDDPG, ReenGAGEDDPG, 0.3, reengage_dim_weights=weights)
    assert fast._manual_plan() is not None
    before = _policy_tensors(fast)
    for step in range(3):
        for agent in (fast, stock):
            agent.replay_buffer.sample = lambda *args, **kwargs: batch
            torch.manual_seed(100 + step)
            agent.train(1, BATCH)
        for key in ("train/critic_loss", "train/actor_loss", "train/reengage_loss"):
            assert fast.logger.name_to_value[key] == pytest.approx(stock.logger.name_to_value[key], rel=1e-4), key
    after = _policy_tensors(fast)
    assert any(not torch.equal(before[name], after[name]) for name in before)  # it trained
    _assert_close(after, _policy_tensors(stock))


def test_fast_td3_robotics_loss_and_gradients_equal_the_sb3_definition():
    """TD3 (two heads, target noise): the fast term and TD loss equal the SB3 path's on one batch and noise sample."""
    fast, stock, batch = _pair(FastReenGAGETD3, ReenGAGETD3, 0.3)
    fast.manual_update = False  # the autograd form's losses (the hand-written form equals it: test above)
    torch.manual_seed(11)
    td_fast, term = fast.critic_loss(batch)
    torch.manual_seed(11)
    noise = (
        batch.actions.clone()
        .normal_(0, fast.target_policy_noise)
        .clamp(-fast.target_noise_clip, fast.target_noise_clip)
    )
    stock._draw_normal = lambda shape: noise / stock.target_policy_noise
    with torch.no_grad():
        next_actions = (stock.actor_target(batch.next_observations) + noise).clamp(-1, 1)
        next_q = torch.cat(stock.critic_target(batch.next_observations, next_actions), dim=1)  # clipped by the hook
        target = batch.rewards + (1 - batch.dones) * stock.gamma * next_q.min(dim=1, keepdim=True).values
    td_stock = sum(torch.nn.functional.mse_loss(q, target) for q in stock.critic(batch.observations, batch.actions))
    term_stock, _ = stock.goal_gradient_loss(batch)
    assert term is not None and term.loss.item() > 0
    torch.testing.assert_close(td_fast, td_stock, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(term.loss, term_stock, rtol=1e-5, atol=1e-8)
    grads = []
    for agent, loss in ((fast, td_fast + 0.3 * term.loss), (stock, td_stock + 0.3 * term_stock)):
        agent.critic.optimizer.zero_grad()
        loss.backward()
        grads.append({name: p.grad.clone() for name, p in agent.critic.named_parameters()})
    _assert_close(grads[0], grads[1], atol=1e-7)


def test_fast_agents_take_the_action_penalty_in_their_step_and_draw_random_actions_as_the_sb3_path():
    fast = _agent(FastReenGAGEDDPG, random_action_prob=1.0)
    stock = _agent(ReenGAGEDDPG, random_action_prob=1.0)
    # the penalty is part of the fast actor loss: no gradient hook that could add it a second time
    assert not fast.actor._forward_hooks and stock.actor._forward_hooks
    draws = []
    for agent in (fast, stock):
        agent._last_obs = {key: np.asarray(value)[None] for key, value in gym.make(ENV_ID).reset(seed=0)[0].items()}
        np.random.seed(5)
        action, buffer_action = agent._sample_action(0, None, 1)
        draws.append(buffer_action)
    np.random.seed(5)
    np.random.random_sample(1)
    np.testing.assert_array_equal(draws[0], np.random.uniform(-1, 1, size=(1, 5)).astype(np.float32))
    np.testing.assert_array_equal(draws[0], draws[1])


def test_handreach_trains_on_the_fast_path_with_the_recipe_and_writes_evaluations(tmp_path):
    """A few hundred HandReach steps with configs/robotics.yaml's recipe on the fast trainer (hand-written form)."""
    pytest.importorskip("gymnasium_robotics")
    from reengage.envs.robotics import require_robotics

    from reengage.experiment.build import agent_class
    from reengage.experiment.config import resolve_config
    from reengage.experiment.runner import train_run

    require_robotics()
    config = resolve_config(
        "HandReach-v3",
        "ddpg",
        1e-3,
        300,
        [
            "trainer=fast",
            "eval_freq=100",
            "eval_episodes=2",
            "buffer_size=5000",
            "checkpoint_every=0",
            "algo_kwargs={reengage_dim_weights: normalised}",
        ],
    )
    assert config["trainer"] == "fast" and config["obs_normalization"] and config["target_value_clip"]
    final = train_run(config, 0, tmp_path / "run", progress=False, verbose=False)
    model = agent_class(config).load(final, env=gym.make("HandReach-v3"))
    assert isinstance(model, FastReenGAGEDDPG) and model._manual_plan() is not None
    assert model._n_updates == 2 * 40  # two cycles after the 100 warm-up steps: (300 - 100) / 100
    goal = normalizing_extractors(model.policy)[0].normalizer_for("desired_goal")
    assert goal.stat_count.item() == 2 * 300 and torch.all(goal.stat_var > 0)
    rows = (tmp_path / "run" / "evaluations.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and [row.split(",")[0] for row in rows[1:]] == ["100", "200", "300"]
