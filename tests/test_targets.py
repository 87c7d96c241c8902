"""The TD3 target, the TD target and the Polyak update that every training path shares (agents/targets.py)."""

from types import SimpleNamespace

import torch
from reengage.agents.targets import polyak_update, td3_target_value, td_target
from stable_baselines3.common.utils import polyak_update as sb3_polyak_update


def test_td3_target_clips_the_noise_then_the_action_and_takes_the_smaller_head():
    policy_action = torch.tensor([[0.9], [-0.2]])
    noise = torch.tensor([[0.4], [-0.1]])
    seen = []

    def heads(action):
        seen.append(action)
        return [action * 2.0, action + 1.0]

    target = td3_target_value(policy_action, noise, 0.3, heads)
    torch.testing.assert_close(target.action, torch.tensor([[1.2], [-0.3]]))  # noise clipped to 0.3 first
    torch.testing.assert_close(seen[0], torch.tensor([[1.0], [-0.3]]))  # then the action to [-1, 1]
    torch.testing.assert_close(target.value, torch.tensor([[2.0], [-0.6]]))
    assert target.head.tolist() == [[0], [0]]
    # no noise: the action as it is (DDPG without smoothing), one head
    plain = td3_target_value(policy_action, None, 0.0, lambda action: [action - 1.0])
    assert torch.equal(plain.action, policy_action) and torch.equal(plain.value, policy_action - 1.0)


def test_td_target_uses_per_transition_discounts_when_the_batch_has_them():
    batch = SimpleNamespace(rewards=torch.tensor([[-1.0], [0.0]]), dones=torch.tensor([[0.0], [1.0]]))
    next_value = torch.tensor([[-4.0], [-4.0]])
    torch.testing.assert_close(td_target(batch, 0.5, next_value), torch.tensor([[-3.0], [0.0]]))
    batch.discounts = torch.tensor([[0.25], [0.25]])
    torch.testing.assert_close(td_target(batch, 0.5, next_value), torch.tensor([[-2.0], [0.0]]))


def test_polyak_update_in_sb3_arithmetic_is_sb3s_bit_for_bit_and_lerp_is_close():
    generator = torch.Generator().manual_seed(0)
    online = [torch.randn(7, 5, generator=generator), torch.randn(5, generator=generator)]
    targets = [torch.randn(7, 5, generator=generator), torch.randn(5, generator=generator)]
    ours, sb3, lerp = ([t.clone() for t in targets] for _ in range(3))
    polyak_update(online, ours, 0.005, sb3_rounding=True)
    sb3_polyak_update(online, sb3, 0.005)
    polyak_update(online, lerp, 0.005)
    for a, b, c in zip(ours, sb3, lerp):
        assert torch.equal(a, b)
        torch.testing.assert_close(c, b, rtol=1e-6, atol=1e-7)
