"""The fast training path computes the same losses and updates as the reference and the SB3 path."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import reengage.envs  # noqa: F401
import torch
import torch.nn.functional as F
from reengage.agents import ReenGAGEDDPG, ReenGAGEDQN, ReenGAGESAC, ReenGAGETD3
from reengage.agents.fast import FastReenGAGEDDPG, FastReenGAGESAC, FastReenGAGETD3
from stable_baselines3 import DDPG, HerReplayBuffer
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.noise import NormalActionNoise

from reengage.experiment.build import agent_class
from reengage.experiment.config import resolve_config

REPO = Path(__file__).resolve().parents[1]
CUDA = pytest.param(
    "cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
)
DEVICES = ["cpu", CUDA]
FAST_TO_SB3 = {FastReenGAGEDDPG: ReenGAGEDDPG, FastReenGAGETD3: ReenGAGETD3, FastReenGAGESAC: ReenGAGESAC}


def _agent(cls, env_id="reengage/ContinuousSeek5-v0", device="cpu", seed=0, **extra):
    kwargs = dict(
        replay_buffer_class=HerReplayBuffer,
        replay_buffer_kwargs=dict(n_sampled_goal=4, goal_selection_strategy="future"),
        learning_starts=80,
        batch_size=64,
        buffer_size=2000,
        seed=seed,
        gamma=0.95,
        device=device,
        action_noise=NormalActionNoise(np.zeros(5), 0.1 * np.ones(5)),
        policy_kwargs=dict(net_arch=[32, 32], share_features_extractor=False),
    )
    if issubclass(cls, ReenGAGESAC):
        del kwargs["action_noise"]
    kwargs.update(extra)
    return cls("MultiInputPolicy", gym.make(env_id), **kwargs)


def _filled_pair(fast_cls, alpha, device="cpu", env_id="reengage/ContinuousSeek5-v0", **extra):
    """A fast agent and an SB3-path agent with identical parameters, optimisers and one shared batch."""
    fast = _agent(fast_cls, env_id, device, reengage_alpha=alpha, **extra)
    fast.learn(80)  # random phase only: fills the buffer, trains nothing
    batch = fast.replay_buffer.sample(64)
    # a few terminal transitions, so the (1 - d) factors are exercised
    dones = batch.dones.clone()
    dones[::7] = 1.0
    batch = batch._replace(dones=dones)
    stock_cls = FAST_TO_SB3[fast_cls]
    stock = _agent(stock_cls, env_id, device, reengage_alpha=alpha, **extra)
    stock.policy.load_state_dict(fast.policy.state_dict())
    stock.set_logger(Logger(folder=None, output_formats=[]))
    if fast.reengage_mode == "sparse":
        assert 0 < float((batch.rewards == -1).float().mean()) < 1  # both sides of the sparse mask
    return fast, stock, batch


def _reference_critic_loss(agent, batch, noise):
    """SB3's TD loss (same target noise) plus alpha times the mixin's term: the reference definition."""
    with torch.no_grad():
        next_actions = agent.actor_target(batch.next_observations)
        if noise is not None:
            next_actions = next_actions + noise
        next_q = torch.cat(agent.critic_target(batch.next_observations, next_actions.clamp(-1, 1)), dim=1)
        target = batch.rewards + (1 - batch.dones) * agent.gamma * next_q.min(dim=1, keepdim=True).values
    td = sum(F.mse_loss(q, target) for q in agent.critic(batch.observations, batch.actions))
    term, _ = agent.goal_gradient_loss(batch)
    return td, term


def _match_term_noise(agent, noise):
    """Make the mixin's private target noise the given sample (it is scaled by target_policy_noise)."""
    std = agent.target_policy_noise
    agent._draw_normal = lambda shape: noise / std if std > 0 else torch.zeros(tuple(shape), device=noise.device)


def _fast_and_reference_losses(fast, reference, batch):
    """(TD, term) of the fast agent and of the reference definition on one batch, with the same target noise."""
    torch.manual_seed(11)
    fast_losses = fast.critic_loss(batch)
    noise = None
    if fast.target_policy_noise > 0:
        torch.manual_seed(11)
        noise = batch.actions.clone().normal_(0, fast.target_policy_noise)
        noise = noise.clamp(-fast.target_noise_clip, fast.target_noise_clip)
        _match_term_noise(reference, noise)
    return fast_losses, _reference_critic_loss(reference, batch, noise), noise


def _critic_gradients(agent, loss):
    agent.critic.optimizer.zero_grad()
    loss.backward()
    return {name: p.grad.clone() for name, p in agent.critic.named_parameters()}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "fast_cls, mode", [(FastReenGAGEDDPG, "sparse"), (FastReenGAGETD3, "sparse"), (FastReenGAGEDDPG, "dense")]
)
def test_fast_loss_matches_the_reference(fast_cls, mode, device):
    env_id = "reengage/ContinuousSeekDense-v0" if mode == "dense" else "reengage/ContinuousSeek5-v0"
    # the SB3-path agent holds the same parameters, with trainable (unfrozen) targets
    fast, reference, batch = _filled_pair(fast_cls, 0.3, device, env_id, reengage_mode=mode)
    (td_fast, term), (td_ref, term_ref), _ = _fast_and_reference_losses(fast, reference, batch)

    assert term is not None and term.loss.item() > 0
    torch.testing.assert_close(td_fast, td_ref, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(term.loss, term_ref, rtol=1e-5, atol=1e-8)
    fast_grads = _critic_gradients(fast, td_fast + 0.3 * term.loss)
    ref_grads = _critic_gradients(reference, td_ref + 0.3 * term_ref)
    for name in ref_grads:
        torch.testing.assert_close(fast_grads[name], ref_grads[name], rtol=1e-5, atol=1e-7, msg=name)
    # the frozen targets received no gradients
    assert all(p.grad is None for p in fast.critic_target.parameters())


def _policy_tensors(agent):
    return {name: tensor.detach().clone() for name, tensor in agent.policy.state_dict().items()}


def _assert_same_parameters(a, b, rtol=1e-5, atol=1e-6):
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=rtol, atol=atol, msg=name)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "fast_cls, alpha",
    [(FastReenGAGEDDPG, 0.0), (FastReenGAGEDDPG, 0.2), (FastReenGAGETD3, 0.0), (FastReenGAGETD3, 0.2)],
)
def test_fast_and_sb3_paths_make_the_same_update(fast_cls, alpha, device):
    """Three gradient steps (TD3: one actor update, delay 2) on the same batch from the same parameters."""
    fast, stock, batch = _filled_pair(fast_cls, alpha, device)
    before = _policy_tensors(fast)
    for step in range(3):
        # (the mixin restores the buffer's own sample() after each train(): set the batch every time)
        for agent in (fast, stock):
            agent.replay_buffer.sample = lambda *args, **kwargs: batch
        if fast.target_policy_noise > 0:
            torch.manual_seed(100 + step)
            noise = batch.actions.clone().normal_(0, fast.target_policy_noise)
            _match_term_noise(stock, noise.clamp(-fast.target_noise_clip, fast.target_noise_clip))
        torch.manual_seed(100 + step)
        fast.train(1, 64)
        torch.manual_seed(100 + step)
        stock.train(1, 64)
    after = _policy_tensors(fast)
    assert any(not torch.equal(before[name], after[name]) for name in before)  # it trained
    _assert_same_parameters(after, _policy_tensors(stock))
    if alpha > 0:
        assert fast.logger.name_to_value["train/reengage_loss"] == pytest.approx(
            stock.logger.name_to_value["train/reengage_loss"], rel=1e-4
        )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("use_sde", [False, True])
@pytest.mark.parametrize("alpha", [0.0, 0.2])
def test_fast_and_sb3_paths_make_the_same_sac_update(alpha, use_sde, device):
    """SAC draws the policy's action, then the target's; the term reuses the target's sample on the fast path.

    With gSDE both paths redraw the exploration matrix first and the term uses that step's matrix.
    """
    fast, stock, batch = _filled_pair(FastReenGAGESAC, alpha, device, use_sde=use_sde)
    for step in range(3):
        for agent in (fast, stock):
            agent.replay_buffer.sample = lambda *args, **kwargs: batch
        torch.manual_seed(200 + step)
        torch.empty(batch.actions.shape, device=device).normal_()  # the policy action's noise
        next_action_noise = torch.empty(batch.actions.shape, device=device).normal_()
        stock._draw_normal = lambda shape, noise=next_action_noise: noise  # the mixin's term: the same sample
        torch.manual_seed(200 + step)
        fast.train(1, 64)
        torch.manual_seed(200 + step)
        stock.train(1, 64)
    _assert_same_parameters(_policy_tensors(fast), _policy_tensors(stock), rtol=1e-4, atol=1e-5)
    for key in ("train/critic_loss", "train/actor_loss", "train/ent_coef"):
        assert fast.logger.name_to_value[key] == pytest.approx(stock.logger.name_to_value[key], rel=1e-4)


def test_fast_sac_with_gsde_at_alpha_zero_trains_like_stock_sac():
    """What train.py builds for SAC with gSDE (the fast agent) redraws gSDE's exploration matrix as SB3 does.

    Over 300 steps with SB3's own HER buffer (the fast buffer relabels with other draws) the parameters
    agree with stock SAC to the fast path's rounding (fused Adam, lerp): without the redraw they differ by ~1e-2.
    """
    from stable_baselines3 import SAC

    class SB3HerBuffer(HerReplayBuffer):
        """SB3's buffer under another name, so the fast agent keeps it."""

    config = resolve_config("reengage/ContinuousSeek5-v0", "sac", alpha=0.0, assignments=["algo_kwargs.use_sde=true"])
    assert agent_class(config) is FastReenGAGESAC and config["algo_kwargs"] == {"use_sde": True}
    models = []
    for cls, extra in ((SAC, {}), (FastReenGAGESAC, {"reengage_alpha": 0.0})):
        model = cls(
            "MultiInputPolicy",
            gym.make("reengage/ContinuousSeek5-v0"),
            replay_buffer_class=SB3HerBuffer,
            learning_starts=100,
            batch_size=32,
            seed=3,
            gamma=0.95,
            use_sde=True,
            policy_kwargs=dict(net_arch=[16, 16], share_features_extractor=False),
            **extra,
        )
        model.learn(300)
        models.append(_policy_tensors(model))
    _assert_same_parameters(*models, rtol=0, atol=1e-5)


def test_fast_path_at_alpha_zero_is_stock_ddpg():
    fast, _, batch = _filled_pair(FastReenGAGEDDPG, 0.0)
    stock = _agent(DDPG)
    stock.policy.load_state_dict(fast.policy.state_dict())
    stock.set_logger(Logger(folder=None, output_formats=[]))
    for agent in (fast, stock):
        agent.replay_buffer.sample = lambda *args, **kwargs: batch
        agent.train(2, 64)
    _assert_same_parameters(_policy_tensors(fast), _policy_tensors(stock))
    assert "train/reengage_loss" not in fast.logger.name_to_value


def test_diagnostics_hook_sees_the_term_tensors():
    fast, _, batch = _filled_pair(FastReenGAGETD3, 0.2)
    seen = {}

    def record(q_goal_grads, target_goal_grad, q_values, mask):
        seen.update(
            heads=len(q_goal_grads),
            grad=tuple(target_goal_grad.shape),
            q=tuple(q_values[0].shape),
            mask=None if mask is None else tuple(mask.shape),
        )

    fast._goal_gradient_diagnostics = record
    fast.critic_loss(batch)
    assert seen == {"heads": 2, "grad": (64, 5), "q": (64, 1), "mask": (64, 1)}


def test_fast_path_is_the_default_and_sb3_is_a_flag():
    assert resolve_config("reengage/ContinuousSeek5-v0", "ddpg")["trainer"] == "fast"
    assert agent_class(resolve_config("reengage/ContinuousSeek5-v0", "ddpg")) is FastReenGAGEDDPG
    assert agent_class(resolve_config("reengage/ContinuousSeek5-v0", "td3")) is FastReenGAGETD3
    assert agent_class(resolve_config("reengage/ContinuousSeek5-v0", "sac")) is FastReenGAGESAC
    assert agent_class(resolve_config("reengage/BitFlipping-v0", "dqn")).__name__ == "FastReenGAGEDQN"
    assert (
        agent_class(resolve_config("reengage/ContinuousSeek5-v0", "ddpg", assignments=["trainer=sb3"])) is ReenGAGEDDPG
    )
    with pytest.raises(ValueError, match="trainer='turbo' is not valid; valid choices: fast, sb3"):
        resolve_config("reengage/ContinuousSeek5-v0", "ddpg", assignments=["trainer=turbo"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from reengage.agents import MultiReenGAGEDDPG

        assert agent_class(resolve_config("reengage/DriveSeek-v0", "multi_ddpg")) is MultiReenGAGEDDPG
    # Multi-ReenGAGE's own fused update is its class default: no fall-back warning
    assert not any("stock SB3 path" in str(w.message) for w in caught)


def test_train_py_refuses_an_unknown_trainer(tmp_path, capsys):
    sys.path.insert(0, str(REPO))
    try:
        import train
    finally:
        sys.path.remove(str(REPO))
    with pytest.raises(SystemExit) as exit_info:
        train.parse_args(["--trainer", "turbo"])
    assert exit_info.value.code == 2 and "invalid choice: 'turbo'" in capsys.readouterr().err
    assert train.parse_args(["--trainer", "sb3"]).trainer == "sb3"
    assert train.main(["--set", "trainer=turbo", "--timesteps", "10", "--logdir", str(tmp_path / "x")]) == 2
    assert "trainer='turbo' is not valid; valid choices: fast, sb3" in capsys.readouterr().err


def test_fast_agent_saves_loads_and_keeps_frozen_targets(tmp_path):
    agent = _agent(FastReenGAGEDDPG, reengage_alpha=0.2)
    agent.learn(100)
    agent.save(tmp_path / "model.zip")
    agent.save_replay_buffer(tmp_path / "buffer.pkl")
    loaded = FastReenGAGEDDPG.load(tmp_path / "model.zip", env=gym.make("reengage/ContinuousSeek5-v0"))
    loaded.load_replay_buffer(tmp_path / "buffer.pkl")
    _assert_same_parameters(_policy_tensors(agent), _policy_tensors(loaded), rtol=0, atol=0)
    assert not any(p.requires_grad for p in loaded.critic_target.parameters())
    loaded.learn(20, reset_num_timesteps=False)  # trains on after loading


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_short_cuda_training_on_the_fast_path():
    agent = _agent(FastReenGAGETD3, device="cuda", reengage_alpha=0.2)
    agent.learn(200)
    assert all(p.device.type == "cuda" for p in agent.policy.parameters())
    assert np.isfinite(agent.logger.name_to_value["train/reengage_loss"])


def test_mode_switches_are_skipped_only_when_the_mode_is_unchanged():
    import copy

    agent = _agent(FastReenGAGEDDPG, reengage_alpha=0.0)
    policy = agent.policy
    policy.set_training_mode(False)
    assert not policy.training and not policy.actor.training
    policy.set_training_mode(True)
    assert policy.training and policy.critic.training
    twin = copy.deepcopy(policy)
    twin.set_training_mode(False)  # acts on the copy, not on the original
    assert not twin.actor.training and policy.actor.training


@pytest.mark.parametrize("alpha, soft_value", [(0.0, False), (0.5, False), (0.5, True)])
def test_fast_and_sb3_paths_make_the_same_dqn_update(alpha, soft_value):
    from reengage.agents.fast import FastReenGAGEDQN
    from reengage.envs import BitFlippingEnv

    def build(cls):
        return cls(
            "MultiInputPolicy",
            BitFlippingEnv(n_bits=5),
            learning_rate=1e-3,
            buffer_size=2000,
            learning_starts=100,
            batch_size=32,
            gamma=0.98,
            max_grad_norm=0.5,
            replay_buffer_class=HerReplayBuffer,
            replay_buffer_kwargs=dict(n_sampled_goal=4),
            policy_kwargs=dict(net_arch=[32]),
            seed=0,
            reengage_alpha=alpha,
            reengage_tau=0.5,
            reengage_soft_value_target=soft_value,
        )

    fast, stock = build(FastReenGAGEDQN), build(ReenGAGEDQN)
    fast.learn(52)  # random phase only (DQN collects 4 steps per rollout): no update yet
    assert fast._n_updates == 0
    stock.policy.load_state_dict(fast.policy.state_dict())
    stock.set_logger(Logger(folder=None, output_formats=[]))
    batch = fast.replay_buffer.sample(32)
    batch = batch._replace(dones=batch.dones.clone().index_fill_(0, torch.arange(0, 32, 5), 1.0))
    assert 0 < float((batch.rewards == -1).float().mean()) < 1
    for _ in range(3):
        for agent in (fast, stock):
            agent.replay_buffer.sample = lambda *args, **kwargs: batch
            agent.train(1, 32)
    _assert_same_parameters(_policy_tensors(fast), _policy_tensors(stock))
    assert fast.logger.name_to_value["train/loss"] == pytest.approx(stock.logger.name_to_value["train/loss"], rel=1e-5)
    assert not any(p.requires_grad for p in fast.policy.q_net_target.parameters())


@pytest.mark.parametrize("fast_cls", [FastReenGAGEDDPG, FastReenGAGETD3])
def test_one_sided_matching_is_the_same_on_both_paths(fast_cls):
    fast, reference, batch = _filled_pair(fast_cls, 0.3, reengage_matching="one_sided")
    (_, term), (_, term_ref), noise = _fast_and_reference_losses(fast, reference, batch)
    torch.testing.assert_close(term.loss, term_ref, rtol=1e-5, atol=1e-8)
    # the logged share of unmatched rows counts the rows the one-sided rule drops, the same on both paths
    if noise is not None:
        _match_term_noise(reference, noise)
    _, unmatched = reference.goal_gradient_loss(batch)
    sparse_only = 1.0 - float((batch.rewards == -1).float().mean())
    assert float(term.masked_fraction) == pytest.approx(unmatched, abs=1e-6)
    assert unmatched > sparse_only
    # and it is a different loss from the full matching on this batch (some rows dropped)
    reference.reengage_matching = "full"
    if noise is not None:
        _match_term_noise(reference, noise)
    full, _ = reference.goal_gradient_loss(batch)
    assert 0 < term_ref.item() < full.item()


def test_unknown_matching_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="reengage_matching must be one of.*one_sided.*got 'half'"):
        _agent(FastReenGAGEDDPG, reengage_matching="half")


def test_fast_agents_form_the_term_in_their_step_not_in_an_optimiser_hook():
    from reengage.agents.fast import FastReenGAGEDQN
    from reengage.envs import BitFlippingEnv

    assert not _agent(FastReenGAGEDDPG, reengage_alpha=0.2).critic.optimizer._optimizer_step_pre_hooks
    assert len(_agent(ReenGAGEDDPG, reengage_alpha=0.2).critic.optimizer._optimizer_step_pre_hooks) == 1
    # DQN keeps its clip of the combined gradient, and only that
    dqn = FastReenGAGEDQN(
        "MultiInputPolicy",
        BitFlippingEnv(n_bits=4),
        replay_buffer_class=HerReplayBuffer,
        learning_starts=30,
        policy_kwargs=dict(net_arch=[16]),
    )
    hooks = list(dqn.policy.optimizer._optimizer_step_pre_hooks.values())
    assert [hook.__func__ for hook in hooks] == [ReenGAGEDQN._clip_combined_gradient]
