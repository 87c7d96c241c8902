"""Replay for goal-set environments (Multi-ReenGAGE, Sec. 8.5): goal sets stored once, item rewards per step.

A transition of DriveSeek or NoisySeek carries a padded goal set of ``n_max = 200`` slots (400 floats of
coordinates and 200 gates). Stored per transition, for both the observation and the next observation,
that is 4.8 GB at 10^6 transitions, almost all of it copies: the goal set is constant within an episode.
:class:`GoalSetReplayBuffer` therefore keeps

* per transition: the per-step keys (the state), next state, action, reward, done, time-out, the
  per-goal reward vector ``R_item(s', g)`` (Eq. 8.18; the paper uses no HER here, so these are the
  rewards the environment reported), and an integer index of the transition's goal set;
* per goal set: its coordinates and gates, once, in a table that grows on demand and recycles a row
  when the last transition referring to it is overwritten (reference counts).

A new row is opened whenever an environment's goal set differs from the one it used last, so nothing
depends on how episodes are delimited. It is a stable-baselines3 buffer: pass
``replay_buffer_class=GoalSetReplayBuffer`` to any off-policy agent; samples are
:class:`GoalSetReplaySamples`, the usual Dict samples plus ``item_rewards`` of shape ``(B, n_max)``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import BaseBuffer
from stable_baselines3.common.vec_env import VecNormalize

GOALS_KEY = "goals"
GATES_KEY = "gates"
ITEM_REWARDS_KEY = "item_rewards"


class GoalSetReplaySamples(NamedTuple):
    """stable-baselines3's Dict samples with the per-goal rewards ``R_item(s', g)``."""

    observations: dict[str, torch.Tensor]
    actions: torch.Tensor
    next_observations: dict[str, torch.Tensor]
    dones: torch.Tensor
    rewards: torch.Tensor
    item_rewards: torch.Tensor
    discounts: torch.Tensor | None = None


class GoalSetReplayBuffer(BaseBuffer):
    """Circular replay whose goal sets live in a shared, reference-counted table.

    Args:
        buffer_size: transitions per environment.
        observation_space: a Dict space with ``goals_key`` ``(n_max, goal_dim)`` and ``gates_key``
            ``(n_max,)`` entries; every other key is stored per transition.
        action_space: the action space.
        device: torch device of the samples.
        n_envs: number of parallel environments.
        optimize_memory_usage: not supported (SB3 passes it; must be False).
        handle_timeout_termination: as in SB3, a time-out is not a terminal state for the target.
        goals_key, gates_key: observation keys of the goal set.
        item_rewards_key: the ``info`` key holding ``R_item(s', g)``, shape ``(n_max,)``.
        initial_goal_sets: starting rows of the goal-set table (it doubles when full).
        item_reward_dtype: storage type of the item rewards (float32 keeps any reward exactly;
            0/1 rewards are also exact in float16 or uint8, at a half or a quarter of the memory).
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Dict,
        action_space: spaces.Space,
        device: torch.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        goals_key: str = GOALS_KEY,
        gates_key: str = GATES_KEY,
        item_rewards_key: str = ITEM_REWARDS_KEY,
        initial_goal_sets: int = 1024,
        item_reward_dtype: Any = np.float32,
    ) -> None:
        if not isinstance(observation_space, spaces.Dict):
            raise ValueError(
                f"GoalSetReplayBuffer needs a Dict observation space, got {type(observation_space).__name__}"
            )
        for key in (goals_key, gates_key):
            if key not in observation_space.spaces:
                raise ValueError(f"observation key {key!r} missing; the space has {sorted(observation_space.spaces)}")
        if optimize_memory_usage:
            raise ValueError("optimize_memory_usage=True is not supported by GoalSetReplayBuffer (use False)")
        if int(initial_goal_sets) < 1:
            raise ValueError(f"initial_goal_sets must be >= 1, got {initial_goal_sets!r}")
        super().__init__(buffer_size, observation_space, action_space, device, n_envs=n_envs)
        self.goals_key = goals_key
        self.gates_key = gates_key
        self.item_rewards_key = item_rewards_key
        self.handle_timeout_termination = handle_timeout_termination

        goal_shape = observation_space.spaces[goals_key].shape
        gate_shape = observation_space.spaces[gates_key].shape
        if len(goal_shape) != 2 or gate_shape != goal_shape[:1]:
            raise ValueError(f"goals must be (n_max, goal_dim) and gates (n_max,); got {goal_shape} and {gate_shape}")
        self.n_max = int(goal_shape[0])
        self.step_keys = [key for key in observation_space.spaces if key not in (goals_key, gates_key)]
        size = (self.buffer_size, self.n_envs)
        self.observations = {
            key: np.zeros(size + self.obs_shape[key], dtype=observation_space.spaces[key].dtype)
            for key in self.step_keys
        }
        self.next_observations = {
            key: np.zeros(size + self.obs_shape[key], dtype=observation_space.spaces[key].dtype)
            for key in self.step_keys
        }
        self.actions = np.zeros(size + (self.action_dim,), dtype=np.float32)
        self.rewards = np.zeros(size, dtype=np.float32)
        self.dones = np.zeros(size, dtype=np.float32)
        self.timeouts = np.zeros(size, dtype=np.float32)
        self.item_rewards = np.zeros(size + (self.n_max,), dtype=item_reward_dtype)
        self.set_index = np.full(size, -1, dtype=np.int32)

        capacity = int(initial_goal_sets)
        self.set_goals = np.zeros((capacity,) + goal_shape, dtype=observation_space.spaces[goals_key].dtype)
        self.set_gates = np.zeros((capacity,) + gate_shape, dtype=observation_space.spaces[gates_key].dtype)
        self.set_refs = np.zeros(capacity, dtype=np.int64)
        self._free_rows = list(range(capacity - 1, -1, -1))
        self._current_row = [-1] * self.n_envs

    # ---------------------------------------------------------------- goal-set table
    @property
    def goal_set_rows_in_use(self) -> int:
        return len(self.set_refs) - len(self._free_rows)

    def _grow(self) -> None:
        old = len(self.set_refs)
        self.set_goals = np.concatenate([self.set_goals, np.zeros_like(self.set_goals)])
        self.set_gates = np.concatenate([self.set_gates, np.zeros_like(self.set_gates)])
        self.set_refs = np.concatenate([self.set_refs, np.zeros_like(self.set_refs)])
        self._free_rows.extend(range(2 * old - 1, old - 1, -1))

    def _release(self, row: int) -> None:
        # a row no transition refers to any more is free, unless an env still writes with it
        if row >= 0 and self.set_refs[row] == 0 and row not in self._current_row:
            self._free_rows.append(row)

    def _row_for(self, env: int, goals: np.ndarray, gates: np.ndarray) -> int:
        row = self._current_row[env]
        if row >= 0 and np.array_equal(self.set_goals[row], goals) and np.array_equal(self.set_gates[row], gates):
            return row
        if not self._free_rows:
            self._grow()
        new_row = self._free_rows.pop()
        self.set_goals[new_row] = goals
        self.set_gates[new_row] = gates
        self._current_row[env] = new_row
        self._release(row)
        return new_row

    # ---------------------------------------------------------------- SB3 interface
    def add(
        self,
        obs: dict[str, np.ndarray],
        next_obs: dict[str, np.ndarray],
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        for env in range(self.n_envs):
            goals = np.asarray(obs[self.goals_key][env])
            gates = np.asarray(obs[self.gates_key][env])
            if not (
                np.array_equal(next_obs[self.goals_key][env], goals)
                and np.array_equal(next_obs[self.gates_key][env], gates)
            ):
                raise ValueError(
                    "the goal set changed within a transition (observation vs next observation); "
                    "GoalSetReplayBuffer stores one goal set per transition"
                )
            if self.item_rewards_key not in infos[env]:
                raise ValueError(
                    f"info of env {env} lacks {self.item_rewards_key!r} (the per-goal reward vector); "
                    f"its keys are {sorted(infos[env])}"
                )
            row = self._row_for(env, goals, gates)
            old_row = int(self.set_index[self.pos, env])
            self.set_index[self.pos, env] = row
            self.set_refs[row] += 1
            if old_row >= 0:  # overwriting the oldest transition
                self.set_refs[old_row] -= 1
                self._release(old_row)
            self.item_rewards[self.pos, env] = np.asarray(infos[env][self.item_rewards_key]).reshape(self.n_max)
            if self.handle_timeout_termination:
                self.timeouts[self.pos, env] = float(infos[env].get("TimeLimit.truncated", False))

        for key in self.step_keys:
            self.observations[key][self.pos] = np.asarray(obs[key]).reshape((self.n_envs,) + self.obs_shape[key])
            self.next_observations[key][self.pos] = np.asarray(next_obs[key]).reshape(
                (self.n_envs,) + self.obs_shape[key]
            )
        self.actions[self.pos] = np.asarray(action).reshape((self.n_envs, self.action_dim))
        self.rewards[self.pos] = np.asarray(reward)
        self.dones[self.pos] = np.asarray(done)

        self.pos += 1
        if self.pos == self.buffer_size:
            self.full = True
            self.pos = 0

    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None) -> GoalSetReplaySamples:
        env_inds = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))
        rows = self.set_index[batch_inds, env_inds]
        goals = self.set_goals[rows]
        gates = self.set_gates[rows]

        def assemble(store: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
            obs = {key: store[key][batch_inds, env_inds] for key in self.step_keys}
            obs[self.goals_key] = goals
            obs[self.gates_key] = gates
            obs = self._normalize_obs(obs, env)
            return {key: self.to_torch(value) for key, value in obs.items()}

        dones = self.dones[batch_inds, env_inds] * (1 - self.timeouts[batch_inds, env_inds])
        return GoalSetReplaySamples(
            observations=assemble(self.observations),
            actions=self.to_torch(self.actions[batch_inds, env_inds]),
            next_observations=assemble(self.next_observations),
            dones=self.to_torch(dones.reshape(-1, 1)),
            rewards=self.to_torch(self._normalize_reward(self.rewards[batch_inds, env_inds].reshape(-1, 1), env)),
            item_rewards=self.to_torch(self.item_rewards[batch_inds, env_inds].astype(np.float32)),
        )

    def reset(self) -> None:
        super().reset()
        self.set_index[:] = -1
        self.set_refs[:] = 0
        self._free_rows = list(range(len(self.set_refs) - 1, -1, -1))
        self._current_row = [-1] * self.n_envs

    def nbytes(self) -> int:
        """Bytes held by the stored arrays (per-transition arrays and the goal-set table)."""
        arrays = [
            *self.observations.values(),
            *self.next_observations.values(),
            self.actions,
            self.rewards,
            self.dones,
            self.timeouts,
            self.item_rewards,
            self.set_index,
            self.set_goals,
            self.set_gates,
            self.set_refs,
        ]
        return int(sum(array.nbytes for array in arrays))
