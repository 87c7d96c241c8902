"""DeepSets critic/actor over gated goal sets and the Multi-ReenGAGE agent (Eq. 8.15-8.19, G.12-G.18)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import reengage.envs  # noqa: F401
import torch
from reengage.agents import DeepSetsEncoder, GoalSetReplayBuffer, MultiReenGAGEDDPG
from reengage.agents.deep_sets import DeepSetsCritic

from reengage import losses

STATE_DIM, GOAL_DIM, N_MAX = 6, 2, 200


def make_critic(seed: int = 0, skip_padding: bool = True, dtype=torch.float32) -> DeepSetsCritic:
    torch.manual_seed(seed)
    space = gym.spaces.Dict(
        {
            "observation": gym.spaces.Box(-10, 10, (STATE_DIM,)),
            "goals": gym.spaces.Box(-10, 10, (N_MAX, GOAL_DIM)),
            "gates": gym.spaces.Box(0, 1, (N_MAX,)),
        }
    )
    encoder = DeepSetsEncoder(STATE_DIM, GOAL_DIM, N_MAX, [16, 16], 8, skip_padding=skip_padding)
    critic = DeepSetsCritic(space, gym.spaces.Box(-1, 1, (1,)), encoder, [16])
    return critic.to(dtype)


def random_batch(batch: int, slots: int, active: int, seed: int = 0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    state = torch.randn(batch, STATE_DIM, generator=gen, dtype=dtype)
    goals = torch.randint(-10, 11, (batch, slots, GOAL_DIM), generator=gen).to(dtype)
    gates = torch.zeros(batch, slots, dtype=dtype)
    gates[:, :active] = 1.0
    goals[:, active:] = 0.0
    actions = torch.rand(batch, 1, generator=gen, dtype=dtype) * 2 - 1
    return state, goals, gates, actions


def q_and_gate_grad(critic, state, goals, gates, actions):
    gates = gates.clone().requires_grad_(True)
    (q,) = critic({"observation": state, "goals": goals, "gates": gates}, actions)
    (grad,) = torch.autograd.grad(q.sum(), gates)
    return q.detach(), grad


@pytest.mark.parametrize("skip_padding", [True, False])
def test_set_encoder_is_permutation_invariant(skip_padding):
    critic = make_critic(skip_padding=skip_padding)
    state, goals, gates, actions = random_batch(4, 30, 20)
    q, grad = q_and_gate_grad(critic, state, goals, gates, actions)
    perm = torch.randperm(30, generator=torch.Generator().manual_seed(1))
    q_perm, grad_perm = q_and_gate_grad(critic, state, goals[:, perm], gates[:, perm], actions)
    torch.testing.assert_close(q_perm, q, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad_perm, grad[:, perm], rtol=1e-5, atol=1e-6)
    assert grad[:, :20].abs().min() > 0  # the invariance is not that of a constant


@pytest.mark.parametrize("skip_padding", [True, False])
def test_padding_changes_neither_q_nor_active_gate_gradients_and_has_zero_gradient(skip_padding):
    critic = make_critic(skip_padding=skip_padding)
    state, goals, gates, actions = random_batch(5, 12, 12)  # 12 goals, no padding at all
    q, grad = q_and_gate_grad(critic, state, goals, gates, actions)
    # interleave 188 padding slots (dummy coordinates 0, gate 0) among the 12 goals
    position = torch.randperm(N_MAX, generator=torch.Generator().manual_seed(2))[:12].sort().values
    padded_goals = torch.zeros(5, N_MAX, GOAL_DIM)
    padded_gates = torch.zeros(5, N_MAX)
    padded_goals[:, position] = goals
    padded_gates[:, position] = 1.0
    q_pad, grad_pad = q_and_gate_grad(critic, state, padded_goals, padded_gates, actions)
    torch.testing.assert_close(q_pad, q, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad_pad[:, position], grad, rtol=1e-5, atol=1e-6)
    padding = torch.ones(N_MAX, dtype=torch.bool)
    padding[position] = False
    assert torch.all(grad_pad[:, padding] == 0.0)  # exactly zero (b^2 gating, Eq. G.15)


def test_skipping_padding_is_the_dense_computation():
    dense, sparse = make_critic(skip_padding=False), make_critic(skip_padding=True)
    sparse.load_state_dict(dense.state_dict())
    state, goals, gates, actions = random_batch(6, N_MAX, 0)
    gates[:, :] = (torch.rand(6, N_MAX, generator=torch.Generator().manual_seed(3)) < 0.4).float()
    q_d, grad_d = q_and_gate_grad(dense, state, goals, gates, actions)
    q_s, grad_s = q_and_gate_grad(sparse, state, goals, gates, actions)
    torch.testing.assert_close(q_s, q_d, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad_s, grad_d, rtol=1e-5, atol=1e-6)


def test_gate_loss_gradients_match_finite_differences():
    """d/dtheta of MSE(grad_b Q_theta, 2 R_item + gamma grad_b Q') -- a second-order gradient."""
    critic = make_critic(seed=4, dtype=torch.float64)
    state, goals, gates, actions = random_batch(3, 10, 7, dtype=torch.float64)
    item_rewards = torch.zeros(3, 10, dtype=torch.float64)
    item_rewards[0, 2] = 1.0
    next_grad = torch.randn(3, 10, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * gates
    dones = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    names = ["encoder.phi.2.weight", "q_networks.0.0.bias"]
    base = dict(critic.named_parameters())

    def loss_of(*tensors):
        params = {**base, **dict(zip(names, tensors))}
        leaf = gates.clone().requires_grad_(True)
        (q,) = torch.func.functional_call(
            critic, params, ({"observation": state, "goals": goals, "gates": leaf}, actions)
        )
        (grad,) = torch.autograd.grad(q.sum(), leaf, create_graph=True)
        return losses.gate_gradient_loss(grad, item_rewards, next_grad, dones, 0.95)

    inputs = tuple(base[name].detach().clone().requires_grad_(True) for name in names)
    assert torch.autograd.gradcheck(loss_of, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)


def tiny_agent(env_id: str = "reengage/DriveSeek-v0", alpha: float = 10.0, share: bool = True, seed: int = 0):
    return MultiReenGAGEDDPG(
        "DeepSetsPolicy",
        gym.make(env_id),
        reengage_alpha=alpha,
        learning_starts=40,
        batch_size=16,
        buffer_size=2000,
        seed=seed,
        policy_kwargs={"encoder_arch": [16, 16], "net_arch": [16], "embed_dim": 4, "share_encoder": share},
    )


def test_encoder_is_shared_and_trained_by_the_critic_only():
    agent = tiny_agent()
    policy = agent.policy
    encoder = policy.critic.encoder
    assert policy.actor.set_encoder is encoder and policy.actor_target.set_encoder is policy.critic_target.encoder
    encoder_ids = {id(p) for p in encoder.parameters()}
    actor_ids = {id(p) for group in policy.actor.optimizer.param_groups for p in group["params"]}
    critic_ids = {id(p) for group in policy.critic.optimizer.param_groups for p in group["params"]}
    assert encoder_ids <= critic_ids and not encoder_ids & actor_ids
    # one polyak pass per network: the target encoder is updated through the critic only
    assert not {id(p) for p in policy.actor_target.parameters()} & {
        id(p) for p in policy.critic_target.encoder.parameters()
    }
    # an actor step leaves the encoder untouched, although its gradient flows through it
    agent.learn(60)
    before = [p.detach().clone() for p in encoder.parameters()]
    batch = agent.replay_buffer.sample(16)
    actor_loss = -policy.critic.q1_forward(batch.observations, policy.actor(batch.observations)).mean()
    policy.actor.optimizer.zero_grad()
    policy.critic.optimizer.zero_grad()
    actor_loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.parameters())
    policy.actor.optimizer.step()
    assert all(torch.equal(b, p) for b, p in zip(before, encoder.parameters()))


def test_unshared_encoder_belongs_to_the_actor():
    policy = tiny_agent(share=False).policy
    assert policy.actor.set_encoder is not policy.critic.encoder
    actor_ids = {id(p) for group in policy.actor.optimizer.param_groups for p in group["params"]}
    assert {id(p) for p in policy.actor.set_encoder.parameters()} <= actor_ids


def test_agent_loss_is_eq_8_19_on_the_stored_item_rewards():
    agent = tiny_agent()
    assert isinstance(agent.replay_buffer, GoalSetReplayBuffer)
    agent.learn(80)
    assert "train/reengage_loss" in agent.logger.name_to_value
    torch.manual_seed(0)
    batch = agent.replay_buffer.sample(16)
    loss, masked = agent.goal_gradient_loss(batch)
    assert masked == 0.0

    policy = agent.policy
    gates = batch.observations["gates"].clone().requires_grad_(True)
    next_gates = batch.next_observations["gates"].clone().requires_grad_(True)
    next_obs = {**batch.next_observations, "gates": next_gates}
    next_q = policy.critic_target.q1_forward(next_obs, policy.actor_target(next_obs))  # DDPG: no target noise
    (next_grad,) = torch.autograd.grad(next_q.sum(), next_gates)
    (q,) = policy.critic({**batch.observations, "gates": gates}, batch.actions)
    (grad,) = torch.autograd.grad(q.sum(), gates, create_graph=True)
    expected = losses.gate_gradient_loss(grad, batch.item_rewards, next_grad, batch.dones, agent.gamma)
    torch.testing.assert_close(loss, expected)
    assert loss.requires_grad and loss.item() > 0


def test_alpha_zero_is_plain_ddpg_and_alpha_changes_training():
    def critic_after(alpha):
        agent = tiny_agent(alpha=alpha, seed=3)
        agent.learn(70)
        return torch.cat([p.detach().flatten() for p in agent.policy.critic.parameters()])

    baseline = critic_after(0.0)
    assert torch.equal(baseline, critic_after(0.0))  # same seed, same result
    assert not torch.allclose(baseline, critic_after(10.0))


def test_save_load_round_trip(tmp_path):
    agent = tiny_agent("reengage/NoisySeek-v0")
    agent.learn(50)
    agent.save(tmp_path / "agent")
    loaded = MultiReenGAGEDDPG.load(tmp_path / "agent")
    obs, _ = gym.make("reengage/NoisySeek-v0").reset(seed=0)
    np.testing.assert_allclose(loaded.predict(obs, deterministic=True)[0], agent.predict(obs, deterministic=True)[0])
    assert loaded.policy.actor.set_encoder is loaded.policy.critic.encoder


def test_policy_rejects_observations_without_a_goal_set():
    with pytest.raises(ValueError, match="goals"):
        MultiReenGAGEDDPG("DeepSetsPolicy", gym.make("reengage/ContinuousSeek-v0"))
