"""The fused Multi-ReenGAGE step (agents/fast/multi_goal_update.py) against the reference path (SB3 + hook)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import reengage.envs  # noqa: F401
import torch
import torch.nn.functional as F
from reengage.agents import MultiReenGAGEDDPG, MultiReenGAGETD3
from reengage.agents.fast import multi_goal_update as fused

from reengage.experiment.build import build_agent, make_training_env
from reengage.experiment.config import resolve_config

RTOL, ATOL = 1e-5, 1e-7


def trained_agent(cls=MultiReenGAGEDDPG, env_id="reengage/DriveSeek-v0", seed=0, steps=70, **kwargs):
    """A small agent past its first updates (non-trivial weights, a filled buffer)."""
    agent = cls(
        "DeepSetsPolicy",
        gym.make(env_id),
        reengage_alpha=kwargs.pop("alpha", 10.0),
        learning_starts=40,
        batch_size=32,
        buffer_size=2000,
        seed=seed,
        policy_kwargs={"encoder_arch": [32, 32], "net_arch": [32], "embed_dim": 8},
        **kwargs,
    )
    agent.learn(steps)
    return agent


def reference_critic_loss(agent, batch):
    """SB3's TD3/DDPG critic loss plus alpha times the mixin's Eq. 8.19 term (the reference path)."""
    policy = agent.policy
    with torch.no_grad():
        noise = batch.actions.clone().normal_(0, agent.target_policy_noise)
        noise = noise.clamp(-agent.target_noise_clip, agent.target_noise_clip)
        next_actions = (policy.actor_target(batch.next_observations) + noise).clamp(-1, 1)
        next_q = torch.cat(policy.critic_target(batch.next_observations, next_actions), dim=1).min(1, keepdim=True)[0]
        target = batch.rewards + (1 - batch.dones) * agent.gamma * next_q
    td = sum(F.mse_loss(q, target) for q in policy.critic(batch.observations, batch.actions))
    term, _ = agent.goal_gradient_loss(batch)
    return td, term


def fused_critic_loss(agent, batch):
    pairs, next_pairs = fused.batch_pairs(batch)
    target = fused.target_terms(agent, batch, next_pairs, True)
    terms = fused.critic_terms(agent, batch, pairs, target, True)
    return terms.td_loss, terms.gate_loss


def gradients(loss, params):
    return torch.autograd.grad(loss, params, allow_unused=True)


@pytest.mark.parametrize("cls", [MultiReenGAGEDDPG, MultiReenGAGETD3])
def test_fused_losses_and_parameter_gradients_equal_the_reference(cls):
    agent = trained_agent(cls)
    # targets differ from the critic so that the target gate gradient is not the critic's own
    with torch.no_grad():
        for param in agent.policy.critic_target.parameters():
            param.add_(0.05 * torch.randn_like(param))
    params = list(agent.policy.critic.parameters())
    np.random.seed(1)
    batch = agent.replay_buffer.sample(32)
    assert batch.observations["gates"].sum(1).min() < batch.observations["gates"].shape[1]  # padding present

    generator_state, torch_state = agent.get_reengage_rng_state(), torch.get_rng_state()
    td_ref, term_ref = reference_critic_loss(agent, batch)
    grads_ref = gradients(td_ref + agent.reengage_alpha * term_ref, params)
    agent.set_reengage_rng_state(generator_state)
    torch.set_rng_state(torch_state)
    td_fast, term_fast = fused_critic_loss(agent, batch)
    grads_fast = gradients(td_fast + agent.reengage_alpha * term_fast, params)

    assert term_ref.item() > 1e-4 and td_ref.item() > 0  # a real term, not zero against zero
    torch.testing.assert_close(td_fast, td_ref, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(term_fast, term_ref, rtol=RTOL, atol=ATOL)
    for name, ref, fast in zip([n for n, _ in agent.policy.critic.named_parameters()], grads_ref, grads_fast):
        assert ref is not None and fast is not None, name
        torch.testing.assert_close(fast, ref, rtol=RTOL, atol=ATOL * max(1.0, ref.abs().max().item()), msg=name)

    # the actor: -Q_1(s, pi(s)) and its gradient in the actor's parameters
    policy = agent.policy
    actor_params = list(policy.actor.parameters())
    ref_actor = -policy.critic.q1_forward(batch.observations, policy.actor(batch.observations)).mean()
    pairs, _ = fused.batch_pairs(batch)
    fast_actor = fused.actor_loss(agent, batch, pairs)
    torch.testing.assert_close(fast_actor, ref_actor, rtol=RTOL, atol=ATOL)
    for ref, fast in zip(gradients(ref_actor, actor_params), gradients(fast_actor, actor_params)):
        torch.testing.assert_close(fast, ref, rtol=RTOL, atol=ATOL * max(1.0, ref.abs().max().item()))


def parameters(agent):
    return {name: value.detach().clone() for name, value in agent.policy.state_dict().items()}


@pytest.mark.parametrize("cls", [MultiReenGAGEDDPG, MultiReenGAGETD3])
def test_fused_training_steps_follow_the_reference_steps(cls):
    runs = {}
    for path in ("reference", "fused"):
        agent = trained_agent(cls, seed=2, gate_update="reference")
        agent.gate_update = path
        assert agent.uses_fused_update == (path == "fused")
        np.random.seed(5)
        torch.manual_seed(5)
        agent.train(gradient_steps=4, batch_size=32)
        runs[path] = (parameters(agent), dict(agent.logger.name_to_value))
    (ref, ref_log), (fast, fast_log) = runs["reference"], runs["fused"]
    for name in ref:
        torch.testing.assert_close(fast[name], ref[name], rtol=1e-4, atol=1e-6, msg=name)
    for key in ("train/critic_loss", "train/actor_loss", "train/reengage_loss"):
        assert fast_log[key] == pytest.approx(ref_log[key], rel=1e-4), key
    assert fast_log["train/n_updates"] == ref_log["train/n_updates"]


def encoder_pass_counter(agent):
    """Counts passes of phi over a batch: rows through phi's last layer / active pairs of the batches sampled."""
    counts = {"rows": 0, "pairs": 0}

    def hook(module, inputs, output):
        counts["rows"] += output.shape[0]

    for encoder in (agent.policy.critic.encoder, agent.policy.critic_target.encoder):
        encoder.phi[-1].register_forward_hook(hook)
    sample = agent.replay_buffer.sample

    def counting_sample(*args, **kwargs):
        batch = sample(*args, **kwargs)
        counts["pairs"] += int(batch.observations["gates"].count_nonzero())
        return batch

    agent.replay_buffer.sample = counting_sample
    return counts


@pytest.mark.parametrize("path, expected", [("reference", 8), ("fused", 3)])
def test_encoder_forwards_per_gradient_step(path, expected):
    agent = trained_agent(gate_update=path)
    counts = encoder_pass_counter(agent)
    agent.train(gradient_steps=5, batch_size=32)
    assert counts["pairs"] > 0 and counts["rows"] == expected * counts["pairs"]


def test_shared_actor_encoding_saves_one_forward():
    agent = trained_agent(actor_encoding="shared")
    counts = encoder_pass_counter(agent)
    agent.train(gradient_steps=3, batch_size=32)
    assert counts["pairs"] > 0 and counts["rows"] == 2 * counts["pairs"]


def test_alpha_zero_fused_is_ddpg_and_skips_the_term():
    agent = trained_agent(alpha=0.0)
    assert agent.uses_fused_update
    before = parameters(agent)
    agent.train(gradient_steps=2, batch_size=32)
    assert (
        "train/reengage_loss" not in agent.logger.name_to_value
        or agent.logger.name_to_value["train/reengage_loss"] == 0
    )
    assert any(not torch.equal(before[name], value) for name, value in parameters(agent).items())


def test_monitoring_at_alpha_zero_logs_the_term_and_leaves_the_update_unchanged():
    plain, monitored = trained_agent(alpha=0.0, seed=4), trained_agent(alpha=0.0, seed=4, reengage_monitor=True)
    assert monitored.logger.name_to_value["train/reengage_loss"] > 0
    for name, value in parameters(plain).items():
        assert torch.equal(parameters(monitored)[name], value), name


def test_bfloat16_encoder_stays_close_to_float32():
    agent = trained_agent()
    np.random.seed(3)
    batch = agent.replay_buffer.sample(32)
    state = torch.get_rng_state(), agent.get_reengage_rng_state()
    exact = fused_critic_loss(agent, batch)
    torch.set_rng_state(state[0])
    agent.set_reengage_rng_state(state[1])
    pairs, next_pairs = fused.batch_pairs(batch)
    target = fused.target_terms(agent, batch, next_pairs, True, torch.bfloat16)
    low = fused.critic_terms(agent, batch, pairs, target, True, autocast_dtype=torch.bfloat16)
    for ref, approx in zip(exact, (low.td_loss, low.gate_loss)):
        assert approx.dtype == torch.float32
        assert approx.item() == pytest.approx(ref.item(), rel=0.05)  # bf16 keeps about 3 significant digits
        assert approx.item() != ref.item()  # it did run in lower precision


def test_train_py_config_uses_the_fused_step_by_default():
    config = resolve_config(
        "reengage/DriveSeek-v0",
        "multi_ddpg",
        alpha=10.0,
        assignments=["net_arch=[8]", "policy_kwargs={encoder_arch: [8], embed_dim: 4}", "buffer_size=500"],
    )
    agent = build_agent(config, make_training_env(config, seed=0), seed=0)
    assert agent.uses_fused_update and agent.gate_update == "fused"
    reference = build_agent(
        dict(config, algo_kwargs={"gate_update": "reference"}), make_training_env(config, seed=0), seed=0
    )
    assert not reference.uses_fused_update


def test_unshared_encoder_falls_back_to_the_reference_path():
    agent = MultiReenGAGEDDPG(
        "DeepSetsPolicy",
        gym.make("reengage/DriveSeek-v0"),
        buffer_size=500,
        policy_kwargs={"encoder_arch": [8], "net_arch": [8], "embed_dim": 4, "share_encoder": False},
    )
    assert agent.gate_update == "fused" and not agent.uses_fused_update


@pytest.mark.parametrize(
    "argument, value, choices",
    [
        ("gate_update", "fast", "fused"),
        ("actor_encoding", "before", "after_step"),
        ("encoder_precision", "fp16", "bfloat16"),
    ],
)
def test_bad_options_name_the_value_and_the_choices(argument, value, choices):
    with pytest.raises(ValueError, match=f"{argument}.*{choices}.*'{value}'"):
        MultiReenGAGEDDPG("DeepSetsPolicy", gym.make("reengage/DriveSeek-v0"), buffer_size=500, **{argument: value})


def test_trainer_switch_picks_the_fused_class_or_the_reference_class():
    """trainer: fast builds MultiReenGAGEDDPG (fused), trainer: sb3 ReferenceMultiReenGAGEDDPG (SB3 + hook)."""
    from reengage.agents import ReferenceMultiReenGAGEDDPG

    from reengage.experiment.build import agent_class

    settings = ["net_arch=[8]", "policy_kwargs={encoder_arch: [8], embed_dim: 4}", "buffer_size=500"]
    fast = resolve_config("reengage/DriveSeek-v0", "multi_ddpg", alpha=10.0, assignments=settings)
    sb3 = resolve_config("reengage/DriveSeek-v0", "multi_ddpg", alpha=10.0, assignments=[*settings, "trainer=sb3"])
    assert agent_class(fast) is MultiReenGAGEDDPG and agent_class(sb3) is ReferenceMultiReenGAGEDDPG
    assert not hasattr(build_agent(sb3, make_training_env(sb3, seed=0), seed=0), "gate_update")
    # the fused step's options are the fast class's: accepted with trainer fast, refused with trainer sb3
    resolve_config(
        "reengage/DriveSeek-v0",
        "multi_ddpg",
        alpha=10.0,
        assignments=[*settings, "algo_kwargs={gate_update: reference}"],
    )
    with pytest.raises(ValueError, match="gate_update is an option of the fast trainer's update"):
        resolve_config(
            "reengage/DriveSeek-v0",
            "multi_ddpg",
            alpha=10.0,
            assignments=[*settings, "trainer=sb3", "algo_kwargs={gate_update: reference}"],
        )


def test_reference_class_trains_as_the_fused_class_on_its_reference_update():
    from reengage.agents import ReferenceMultiReenGAGEDDPG

    reference = trained_agent(ReferenceMultiReenGAGEDDPG, seed=3)
    counts = encoder_pass_counter(reference)
    reference.train(gradient_steps=2, batch_size=32)
    assert counts["pairs"] > 0 and counts["rows"] == 8 * counts["pairs"]  # SB3's train plus the hook
    fused_class = trained_agent(seed=3, gate_update="reference")
    fused_class.train(gradient_steps=2, batch_size=32)
    for name, value in parameters(reference).items():
        assert torch.equal(parameters(fused_class)[name], value), name
