"""ReenGAGEDQN: alpha = 0 is stock DQN bit for bit, the combined gradient is clipped as one, Eq. G.11's
value target, seeding, arguments and save/load."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from reengage.agents import ReenGAGEDQN
from reengage.envs import BitFlippingEnv
from stable_baselines3 import DQN, HerReplayBuffer

from reengage.losses import soft_max_target

N_BITS = 5


def _kwargs(seed: int = 0, **overrides):
    kwargs = dict(
        learning_rate=1e-3,
        buffer_size=10_000,
        learning_starts=50,
        batch_size=32,
        tau=0.05,
        gamma=0.98,
        train_freq=(1, "episode"),
        gradient_steps=2,
        target_update_interval=20,
        exploration_fraction=0.0,
        exploration_initial_eps=0.2,
        exploration_final_eps=0.2,
        replay_buffer_class=HerReplayBuffer,
        replay_buffer_kwargs=dict(n_sampled_goal=4, goal_selection_strategy="future"),
        policy_kwargs=dict(net_arch=[32]),
        seed=seed,
        device="cpu",
    )
    kwargs.update(overrides)
    return kwargs


def _train(cls, timesteps: int = 400, **kwargs):
    model = cls("MultiInputPolicy", BitFlippingEnv(n_bits=N_BITS), **_kwargs(**kwargs))
    model.learn(timesteps)
    return model


def _parameters(model) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.policy.parameters()]


def _assert_identical(a, b):
    pa, pb = _parameters(a), _parameters(b)
    assert len(pa) == len(pb)
    assert all(torch.equal(x, y) for x, y in zip(pa, pb))


@pytest.mark.parametrize("max_grad_norm", [10.0, 0.05])  # 0.05: the clip is active on most steps
@pytest.mark.parametrize("monitor", [False, True])
def test_alpha_zero_is_stock_dqn(max_grad_norm, monitor):
    stock = _train(DQN, max_grad_norm=max_grad_norm)
    ours = _train(ReenGAGEDQN, max_grad_norm=max_grad_norm, reengage_alpha=0.0, reengage_monitor=monitor)
    assert stock._n_updates == ours._n_updates > 100
    _assert_identical(stock, ours)
    if monitor:  # the zero-weight path really ran
        assert "train/reengage_loss" in ours.logger.name_to_value


def test_alpha_positive_changes_training():
    stock = _train(DQN)
    ours = _train(ReenGAGEDQN, reengage_alpha=1.0, reengage_tau=0.5)
    assert not all(torch.equal(x, y) for x, y in zip(_parameters(stock), _parameters(ours)))
    assert ours.logger.name_to_value["train/reengage_loss"] > 0


@pytest.mark.parametrize("soft_value", [False, True])
def test_seeded_runs_repeat(soft_value):
    a = _train(ReenGAGEDQN, timesteps=200, reengage_alpha=0.5, reengage_tau=1.0, reengage_soft_value_target=soft_value)
    b = _train(ReenGAGEDQN, timesteps=200, reengage_alpha=0.5, reengage_tau=1.0, reengage_soft_value_target=soft_value)
    _assert_identical(a, b)
    c = _train(ReenGAGEDQN, timesteps=200, seed=1, reengage_alpha=0.5, reengage_tau=1.0)
    assert not all(torch.equal(x, y) for x, y in zip(_parameters(a), _parameters(c)))


def test_combined_gradient_is_clipped_as_one():
    """With a tiny clip norm every step's gradient, ReenGAGE term included, has exactly that norm."""
    max_norm = 1e-3
    model = ReenGAGEDQN(
        "MultiInputPolicy",
        BitFlippingEnv(n_bits=N_BITS),
        **_kwargs(max_grad_norm=max_norm, reengage_alpha=1.0, reengage_tau=0.5),
    )
    assert model.max_grad_norm == math.inf and model.reengage_max_grad_norm == max_norm
    norms, term_norms = [], []

    def record(optimizer, args, kwargs):  # registered last: sees the gradient step() will apply
        grads = [p.grad for p in model.policy.parameters() if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))
        term_norms.append(model._term_log["loss"][-1] if model._term_log.get("loss") else 0.0)

    model.policy.optimizer.register_step_pre_hook(record)
    model.learn(200)
    assert len(norms) > 50 and max(term_norms) > 0  # the ReenGAGE term was added on these steps
    np.testing.assert_allclose(norms, max_norm, rtol=1e-4)


def test_soft_value_target_is_eq_g11():
    """One update with reengage_soft_value_target: the Huber target is r + gamma (1 - d) SoftMax[Q'/tau].Q'."""
    tau = 1.0
    model = ReenGAGEDQN(
        "MultiInputPolicy",
        BitFlippingEnv(n_bits=N_BITS),
        **_kwargs(learning_starts=10_000, reengage_alpha=0.0, reengage_tau=tau, reengage_soft_value_target=True),
    )
    model.learn(200)  # fills the buffer, no update yet
    assert model._n_updates == 0
    # make the target network differ from the online one so the test sees which target is used
    with torch.no_grad():
        for p in model.policy.q_net_target.parameters():
            p.add_(0.3 * torch.randn_like(p))
    q_net = copy.deepcopy(model.policy.q_net)
    q_target = copy.deepcopy(model.policy.q_net_target)

    captured = []
    sample = model.replay_buffer.sample

    def capture(*args, **kwargs):
        captured.append(sample(*args, **kwargs))
        return captured[-1]

    model.replay_buffer.sample = capture
    model.train(gradient_steps=1, batch_size=32)
    del model.replay_buffer.sample
    batch = captured[0]

    def manual_step(target_fn):
        net = copy.deepcopy(q_net)
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        with torch.no_grad():
            target = batch.rewards + (1 - batch.dones) * 0.98 * target_fn(q_target(batch.next_observations))
        current = net(batch.observations).gather(1, batch.actions.long())
        F.smooth_l1_loss(current, target).backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
        optimizer.step()
        return [p.detach() for p in net.parameters()]

    trained = [p.detach() for p in model.policy.q_net.parameters()]
    soft = manual_step(lambda q: soft_max_target(q, tau))
    hard = manual_step(lambda q: q.max(dim=1, keepdim=True).values)
    for got, want in zip(trained, soft):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    assert any(not torch.allclose(got, other, rtol=1e-5, atol=1e-7) for got, other in zip(trained, hard))
    assert model.q_net_target is model.policy.q_net_target  # the swap is undone


def test_eq_g10_default_keeps_the_hard_value_target():
    """Without the G.11 option, alpha 0 with any tau trains exactly as stock DQN (tau only enters the term)."""
    stock = _train(DQN, timesteps=250)
    ours = _train(ReenGAGEDQN, timesteps=250, reengage_alpha=0.0, reengage_tau=1.0, reengage_monitor=True)
    _assert_identical(stock, ours)


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"reengage_tau": -1.0}, "reengage_tau"),
        ({"reengage_tau": float("nan")}, "reengage_tau"),
        ({"max_grad_norm": 0.0}, "max_grad_norm"),
        ({"n_steps": 3}, "n_steps"),
        ({"reengage_alpha": -0.5}, "reengage_alpha"),
    ],
)
def test_bad_arguments(overrides, match):
    with pytest.raises(ValueError, match=match):
        ReenGAGEDQN("MultiInputPolicy", BitFlippingEnv(n_bits=N_BITS), **_kwargs(**overrides))


def test_save_load_keeps_the_clip_and_options(tmp_path):
    model = _train(
        ReenGAGEDQN,
        timesteps=150,
        max_grad_norm=2.5,
        reengage_alpha=1.0,
        reengage_tau=0.25,
        reengage_soft_value_target=True,
    )
    model.save(tmp_path / "dqn")
    loaded = ReenGAGEDQN.load(tmp_path / "dqn", env=BitFlippingEnv(n_bits=N_BITS), device="cpu")
    assert loaded.reengage_max_grad_norm == 2.5 and loaded.max_grad_norm == math.inf
    assert loaded.reengage_tau == 0.25 and loaded.reengage_soft_value_target and loaded.reengage_alpha == 1.0
    _assert_identical(model, loaded)
    obs, _ = BitFlippingEnv(n_bits=N_BITS).reset(seed=0)
    assert model.predict(obs, deterministic=True)[0] == loaded.predict(obs, deterministic=True)[0]
