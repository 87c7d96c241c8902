"""The ReenGAGE term inside the agents: exact values, finite differences, and where gradients go."""

from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import reengage.envs  # noqa: F401
import torch
from reengage.agents import ReenGAGEDDPG, ReenGAGESAC, ReenGAGETD3, TD3GoalGradient
from stable_baselines3 import HerReplayBuffer

from reengage import losses

GAMMA = 0.9
D = 3


class AnalyticCritic(torch.nn.Module):
    """Prop. 8.1's critic: Q = g.(s + U a)/(1 - gamma) + gamma ||g|| / (1 - gamma)^2."""

    def __init__(self, rotation):
        super().__init__()
        self.rotation = rotation

    def forward(self, obs, actions):
        s, g = obs["observation"], obs["desired_goal"]
        moved = s + actions @ self.rotation.T
        q = (g * moved).sum(-1, keepdim=True) / (1 - GAMMA) + GAMMA * g.norm(dim=-1, keepdim=True) / (1 - GAMMA) ** 2
        return (q,)


class TanhActor(torch.nn.Module):
    """A deliberately non-optimal target actor a'(g) = tanh(M g), so the path through it matters."""

    def __init__(self, matrix):
        super().__init__()
        self.matrix = matrix

    def forward(self, obs):
        return torch.tanh(obs["desired_goal"] @ self.matrix.T)


class AnalyticAgent(TD3GoalGradient):
    """The mixin's TD3 target on closed-form networks, without stable-baselines3 around it."""


def _analytic_agent(rotation, matrix, mode="sparse"):
    agent = object.__new__(AnalyticAgent)
    agent.critic = AnalyticCritic(rotation)
    agent.critic_target = AnalyticCritic(rotation)
    agent.actor_target = TanhActor(matrix)
    agent.target_policy_noise, agent.target_noise_clip = 0.1, 0.0  # DDPG: noise clipped to zero
    agent._reengage_generator = torch.Generator().manual_seed(0)
    agent.device = torch.device("cpu")
    agent.gamma, agent.c_low, agent.reengage_mode = GAMMA, -1.0, mode
    agent.reengage_goal_key, agent.reengage_dim_weights = "desired_goal", "none"
    agent._vec_normalize_env = None
    agent.reengage_reward_fn = lambda achieved, goal: -torch.sqrt(((achieved - goal) ** 2).sum(-1, keepdim=True))
    return agent


def _analytic_batch(seed=0, batch=5):
    rng = np.random.default_rng(seed)
    as_tensor = lambda x: torch.as_tensor(x, dtype=torch.float64)  # noqa: E731
    s, s_next, g = (rng.normal(size=(batch, D)) for _ in range(3))
    actions = rng.uniform(-1, 1, size=(batch, D))
    obs = {"observation": as_tensor(s), "achieved_goal": as_tensor(s), "desired_goal": as_tensor(g)}
    next_obs = {"observation": as_tensor(s_next), "achieved_goal": as_tensor(s_next), "desired_goal": as_tensor(g)}
    rewards = as_tensor([[-1.0], [0.0], [-1.0], [-1.0], [-1.0]][:batch])
    dones = as_tensor([[0.0], [0.0], [1.0], [0.0], [0.0]][:batch])
    return SimpleNamespace(
        observations=obs, next_observations=next_obs, actions=as_tensor(actions), rewards=rewards, dones=dones
    ), (s, s_next, g, actions, rewards.numpy(), dones.numpy())


def _expected_gradients(rotation, matrix, s, s_next, g, actions):
    norm = np.linalg.norm(g, axis=1, keepdims=True)
    q_grad = (s + actions @ rotation.T) / (1 - GAMMA) + GAMMA * g / norm / (1 - GAMMA) ** 2
    a_next = np.tanh(g @ matrix.T)
    # total derivative of Q(s', tanh(M g), g): direct term + the path through the target actor
    through_actor = ((1 - a_next**2) * (g @ rotation)) @ matrix / (1 - GAMMA)
    target_grad = (s_next + a_next @ rotation.T) / (1 - GAMMA) + through_actor + GAMMA * g / norm / (1 - GAMMA) ** 2
    return q_grad, target_grad


def test_analytic_critic_gives_the_exact_sparse_loss():
    rng = np.random.default_rng(3)
    rotation, _ = np.linalg.qr(rng.normal(size=(D, D)))
    matrix = rng.normal(size=(D, D))
    agent = _analytic_agent(torch.as_tensor(rotation), torch.as_tensor(matrix))
    batch, (s, s_next, g, actions, rewards, dones) = _analytic_batch()
    q_grad, target_grad = _expected_gradients(rotation, matrix, s, s_next, g, actions)

    assert np.allclose(agent.target_goal_gradient(batch).numpy(), target_grad, atol=1e-10)
    loss, masked = agent.goal_gradient_loss(batch)
    mask = rewards == -1.0
    expected = (mask * (q_grad - GAMMA * (1 - dones) * target_grad)) ** 2
    assert loss.item() == pytest.approx(expected.mean(), rel=1e-10)
    assert masked == pytest.approx(0.2)


def test_analytic_critic_gives_the_exact_dense_loss():
    rng = np.random.default_rng(4)
    rotation, _ = np.linalg.qr(rng.normal(size=(D, D)))
    matrix = rng.normal(size=(D, D))
    agent = _analytic_agent(torch.as_tensor(rotation), torch.as_tensor(matrix), mode="dense")
    batch, (s, s_next, g, actions, _, dones) = _analytic_batch(seed=1)
    q_grad, target_grad = _expected_gradients(rotation, matrix, s, s_next, g, actions)
    reward_grad = (s_next - g) / np.linalg.norm(s_next - g, axis=1, keepdims=True)  # grad_g of -||s' - g||
    loss, masked = agent.goal_gradient_loss(batch)
    expected = (q_grad - (reward_grad + GAMMA * (1 - dones) * target_grad)) ** 2
    assert loss.item() == pytest.approx(expected.mean(), rel=1e-10)
    assert masked == 0.0


def _small_agent(cls, env_id="reengage/ContinuousSeek5-v0", **kwargs):
    env = gym.make(env_id)
    defaults = dict(
        replay_buffer_class=HerReplayBuffer,
        replay_buffer_kwargs=dict(n_sampled_goal=4, goal_selection_strategy="future"),
        learning_starts=40,
        batch_size=32,
        seed=0,
        gamma=0.95,
        policy_kwargs=dict(net_arch=[16, 16], share_features_extractor=False),
    )
    defaults.update(kwargs)
    return cls("MultiInputPolicy", env, **defaults)


def _central_difference(function, goal, step=5e-3):
    numeric = torch.zeros(goal.shape, dtype=torch.float64)
    for j in range(goal.shape[1]):
        plus, minus = goal.clone(), goal.clone()
        plus[:, j] += step
        minus[:, j] -= step
        numeric[:, j] = (function(plus) - function(minus)).squeeze(1) / (2 * step)
    return numeric


@pytest.mark.parametrize("cls", [ReenGAGEDDPG, ReenGAGETD3, ReenGAGESAC])
def test_goal_gradients_match_finite_differences(cls):
    model = _small_agent(cls, reengage_alpha=0.2)
    model.learn(80)  # fills the buffer and trains a little, so the networks are not at initialisation
    batch = model.replay_buffer.sample(16, env=None)
    context = model._batch_context(batch)
    state = model.get_reengage_rng_state()

    def target_value(goal):
        model.set_reengage_rng_state(state)  # the same target-action noise at every evaluation
        next_obs = {**batch.next_observations, "desired_goal": goal}
        with torch.no_grad():
            return model._target_value(next_obs, batch, context).double()

    model.set_reengage_rng_state(state)
    autograd = model.target_goal_gradient(batch, context)
    numeric = _central_difference(target_value, batch.next_observations["desired_goal"].clone())
    assert torch.allclose(autograd.double(), numeric, atol=5e-3, rtol=5e-2)
    assert autograd.abs().sum() > 0

    def first_head(goal):
        with torch.no_grad():
            return model.critic({**batch.observations, "desired_goal": goal}, batch.actions)[0].double()

    critic_grad = model.critic_goal_gradients(batch.observations, batch.actions)[0]
    numeric = _central_difference(first_head, batch.observations["desired_goal"].clone())
    assert torch.allclose(critic_grad.double(), numeric, atol=5e-3, rtol=5e-2)


def test_sac_gsde_goal_gradient_flows_through_the_noise_features():
    """gSDE's target action is tanh(mu + phi(s', g) @ E), with E the exploration matrix of the step: the goal
    gradient is the total derivative at fixed E, through phi in the noise and in log pi's variance too."""
    policy_kwargs = dict(net_arch=[16, 16], share_features_extractor=False, log_std_init=-1.0)
    model = _small_agent(ReenGAGESAC, reengage_alpha=0.2, use_sde=True, policy_kwargs=policy_kwargs)
    model.learn(80)
    batch = model.replay_buffer.sample(16, env=None)
    context = model._batch_context(batch)
    model.actor.reset_noise()  # E, held fixed below (the target reads it and draws nothing)

    def target_value(goal):
        with torch.no_grad():
            return model._target_value({**batch.next_observations, "desired_goal": goal}, batch, context).double()

    autograd = model.target_goal_gradient(batch, context).double()
    # a small step: the noise features are ReLU units, and a wider step crosses their kinks
    numeric = _central_difference(target_value, batch.next_observations["desired_goal"].clone(), step=1e-3)
    assert torch.allclose(autograd, numeric, atol=5e-3, rtol=5e-2)
    # cutting the path through phi (SB3's learn_features=False) gives another, wrong derivative
    model.actor.action_dist.learn_features = False
    assert not torch.allclose(model.target_goal_gradient(batch, context).double(), numeric, atol=5e-3, rtol=5e-2)
    model.actor.action_dist.learn_features = True
    # and the term's gradient reaches the critic only (not the actor's log_std through E)
    model.policy.zero_grad(set_to_none=True)
    loss, _ = model.goal_gradient_loss(batch, context)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.critic.parameters())
    assert all(p.grad is None for p in [*model.actor.parameters(), *model.critic_target.parameters()])


@pytest.mark.parametrize("cls", [ReenGAGEDDPG, ReenGAGETD3, ReenGAGESAC])
def test_the_term_reaches_only_the_critic(cls):
    model = _small_agent(cls, reengage_alpha=0.2)
    model.learn(60)
    batch = model.replay_buffer.sample(16, env=None)
    model.policy.zero_grad(set_to_none=True)
    for module in (model.critic_target, getattr(model, "actor_target", model.actor)):
        for parameter in module.parameters():
            parameter.grad = None
    loss, _ = model.goal_gradient_loss(batch)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.critic.parameters())
    assert all(p.grad is None for p in model.critic_target.parameters())
    assert all(p.grad is None for p in model.actor.parameters())
    if hasattr(model, "actor_target"):
        assert all(p.grad is None for p in model.actor_target.parameters())


def test_dense_mode_reads_the_environment_reward_gradient():
    model = _small_agent(
        ReenGAGEDDPG, env_id="reengage/ContinuousSeekDense-v0", reengage_alpha=0.2, reengage_mode="dense"
    )
    model.learn(60)
    batch = model.replay_buffer.sample(8, env=None)
    achieved = batch.next_observations["achieved_goal"].double()
    goal = batch.next_observations["desired_goal"].double()
    distance = (achieved - goal).norm(dim=1, keepdim=True)
    gradient = model._reward_goal_gradient(batch).double()
    apart = distance[:, 0] > 1e-4  # HER may relabel a goal onto the achieved point itself
    assert apart.sum() >= 4
    assert torch.allclose(gradient[apart], ((achieved - goal) / distance)[apart], atol=1e-5)
    assert torch.isfinite(gradient).all()  # and where the goal is reached exactly, no NaN
    # with the reward gradient in the target, the dense loss differs from the same loss without it
    dense, _ = model.goal_gradient_loss(batch)
    q_grad = model.critic_goal_gradients(batch.observations, batch.actions)[0]
    without = losses.dense_goal_gradient_loss(
        q_grad, torch.zeros_like(q_grad), model.target_goal_gradient(batch), batch.dones, model.gamma
    )
    assert dense.item() != pytest.approx(without.item(), rel=1e-3)


def test_dense_mode_on_a_sparse_env_is_refused_with_a_reason():
    model = _small_agent(ReenGAGEDDPG, reengage_alpha=0.2, reengage_mode="dense")
    with pytest.raises(ValueError, match="differentiable_reward"):
        model.learn(60)


def test_bad_arguments_name_the_valid_choices():
    with pytest.raises(ValueError, match="sparse"):
        _small_agent(ReenGAGEDDPG, reengage_mode="hard")
    with pytest.raises(ValueError, match="reengage_alpha"):
        _small_agent(ReenGAGEDDPG, reengage_alpha=-1.0)
    with pytest.raises(ValueError, match="share_features_extractor"):
        _small_agent(ReenGAGEDDPG, policy_kwargs=dict(net_arch=[8], share_features_extractor=True))
    with pytest.raises(ValueError, match="normalised"):
        _small_agent(ReenGAGEDDPG, reengage_dim_weights="whitened")
