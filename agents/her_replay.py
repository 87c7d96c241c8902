"""A hindsight replay buffer that samples in time independent of its size: :class:`FastHerReplayBuffer`.

It is a drop-in for stable-baselines3's :class:`~stable_baselines3.HerReplayBuffer` (same constructor,
``add`` and ``sample`` contract, same relabelling distribution) that differs in how it gets there:

* **No scan of the buffer per sample.** SB3 finds the sampleable transitions with
  ``np.flatnonzero(ep_length > 0)`` over all ``buffer_size x n_envs`` slots on every call (about a
  millisecond at the default capacity of 10^6). Here the sampleable transitions of each environment
  are kept as one circular interval ``[current_episode_start - n_valid, current_episode_start)``:
  finished episodes join it at its end, and overwriting (which always begins at the oldest episode's
  first step) removes whole episodes from its front. ``n_valid`` is updated incrementally in ``add``,
  so a batch costs O(batch size).
* **Rewards of relabelled transitions in one call.** The environment's vectorised ``compute_reward``
  is looked up once (through the wrappers, as SB3's ``env_method`` does) when the training env is a
  ``DummyVecEnv`` and called directly on the whole batch; other VecEnvs (``SubprocVecEnv``) go through
  ``env_method`` as in SB3.
* **One gather per key.** Real and relabelled rows are gathered together, normalised together (a
  ``VecNormalize`` env normalises observations and rewards at sample time, as in SB3) and turned into
  tensors without a second copy.
* **Its own random generator.** Draws come from ``self.rng`` (a :class:`numpy.random.Generator`), which
  is pickled with the buffer, so a checkpoint resumes bit-exactly and sampling can run off the main
  thread without racing the global numpy RNG. With ``seed=None`` the generator is seeded from the
  global numpy RNG when the buffer is built, so a seeded SB3 model gives the same run twice.
* **Checkpoints hold only the filled part.** ``__getstate__`` trims every per-transition array to the
  ``pos`` rows written so far (until the buffer is full) and ``__setstate__`` re-allocates the full
  capacity, so SB3's ``save_replay_buffer``/``load_replay_buffer`` and the project's checkpoints work
  unchanged. The info dicts are stored only with ``copy_info_dict=True`` (SB3 allocates a dict per
  slot regardless).

Relabelling follows SB3 2.x exactly in distribution: a transition is drawn uniformly among those of
finished, not-overwritten episodes of all environments (an unfinished episode is never sampled); the
last ``int(her_ratio * batch_size)`` rows of the batch, ``her_ratio = 1 - 1 / (n_sampled_goal + 1)``,
get a new desired goal, the ``achieved_goal`` of the next observation of a step of the same episode:
``'future'`` a uniformly drawn step from the transition's own (inclusive) to the last, ``'final'`` the
last, ``'episode'`` any. Dones are masked by time-outs (``handle_timeout_termination``) as in SB3.
It subclasses SB3's class so that SB3's algorithms pass it the env and re-attach the env on
``load_replay_buffer``; none of SB3's sampling code runs.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import DictReplayBuffer
from stable_baselines3.common.type_aliases import DictReplayBufferSamples
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecEnvWrapper, VecNormalize
from stable_baselines3.her.goal_selection_strategy import KEY_TO_GOAL_STRATEGY, GoalSelectionStrategy
from stable_baselines3.her.her_replay_buffer import HerReplayBuffer

ACHIEVED_GOAL_KEY = "achieved_goal"
DESIRED_GOAL_KEY = "desired_goal"

RewardFunction = Callable[[np.ndarray, np.ndarray, Any], np.ndarray]

# per-transition arrays other than the observation dicts: trimmed in checkpoints
_ROW_ARRAYS = ("actions", "rewards", "dones", "timeouts", "ep_start", "ep_length", "infos")


def batch_reward_function(env: VecEnv) -> RewardFunction:
    """The vectorised ``compute_reward(achieved_goal, desired_goal, infos)`` of ``env``'s first environment.

    For a ``DummyVecEnv`` (under any VecEnv wrappers) this is the method itself, found as SB3's
    ``env_method`` finds it (``get_wrapper_attr``: the outermost gymnasium wrapper that defines it), so a
    batch costs one Python call. Any other VecEnv (a ``SubprocVecEnv``) is asked through ``env_method``.
    """
    inner = env
    while isinstance(inner, VecEnvWrapper):
        inner = inner.venv
    if isinstance(inner, DummyVecEnv):
        return inner.envs[0].get_wrapper_attr("compute_reward")

    def through_env_method(achieved_goal: np.ndarray, desired_goal: np.ndarray, infos: Any) -> np.ndarray:
        return env.env_method("compute_reward", achieved_goal, desired_goal, infos, indices=[0])[0]

    return through_env_method


class FastHerReplayBuffer(HerReplayBuffer):
    """Hindsight experience replay with O(batch) sampling; SB3's ``HerReplayBuffer`` contract.

    :param buffer_size: capacity in transitions, shared by the envs (``buffer_size // n_envs`` slots each, as in SB3).
    :param observation_space: a Dict space with ``observation``, ``achieved_goal`` and ``desired_goal``.
    :param action_space: the action space.
    :param env: the training VecEnv (its ``compute_reward`` rewards relabelled transitions).
    :param device: torch device of the samples.
    :param n_envs: number of parallel environments.
    :param optimize_memory_usage: not supported, as in SB3 (must be False).
    :param handle_timeout_termination: a time-out is not a terminal state for the target (as in SB3).
    :param n_sampled_goal: relabelled transitions per real one; ``her_ratio = 1 - 1 / (k + 1)``.
    :param goal_selection_strategy: ``'future'`` (inclusive of the current step), ``'final'`` or ``'episode'``.
    :param copy_info_dict: store the info dicts and pass copies of them to ``compute_reward``.
    :param seed: seed of the buffer's generator; ``None`` draws it from the global numpy RNG.
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Dict,
        action_space: spaces.Space,
        env: VecEnv | None,
        device: th.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        n_sampled_goal: int = 4,
        goal_selection_strategy: GoalSelectionStrategy | str = "future",
        copy_info_dict: bool = False,
        seed: int | None = None,
    ) -> None:
        if isinstance(goal_selection_strategy, str):
            key = goal_selection_strategy.lower()
            if key not in KEY_TO_GOAL_STRATEGY:
                raise ValueError(
                    f"goal_selection_strategy {goal_selection_strategy!r} is not one of {sorted(KEY_TO_GOAL_STRATEGY)}"
                )
            goal_selection_strategy = KEY_TO_GOAL_STRATEGY[key]
        if not isinstance(goal_selection_strategy, GoalSelectionStrategy):
            raise ValueError(
                f"goal_selection_strategy {goal_selection_strategy!r} is not one of {sorted(KEY_TO_GOAL_STRATEGY)}"
            )
        if int(n_sampled_goal) != n_sampled_goal or n_sampled_goal < 0:
            raise ValueError(f"n_sampled_goal must be an integer >= 0, got {n_sampled_goal!r}")
        if not isinstance(observation_space, spaces.Dict) or not {ACHIEVED_GOAL_KEY, DESIRED_GOAL_KEY} <= set(
            observation_space.spaces
        ):
            raise ValueError(
                f"FastHerReplayBuffer needs a Dict observation space with {ACHIEVED_GOAL_KEY!r} and "
                f"{DESIRED_GOAL_KEY!r}, got {observation_space}"
            )
        # SB3's HerReplayBuffer.__init__ is skipped on purpose: it allocates an info dict per slot
        DictReplayBuffer.__init__(
            self,
            buffer_size,
            observation_space,
            action_space,
            device=device,
            n_envs=n_envs,
            optimize_memory_usage=optimize_memory_usage,
            handle_timeout_termination=handle_timeout_termination,
        )
        self.env = env
        self.copy_info_dict = copy_info_dict
        self.goal_selection_strategy = goal_selection_strategy
        self.n_sampled_goal = int(n_sampled_goal)
        self.her_ratio = 1 - (1.0 / (self.n_sampled_goal + 1))
        self.infos = np.empty((self.buffer_size, self.n_envs), dtype=object) if copy_info_dict else None
        # per slot: where its episode starts and how long it is (0: not sampleable), as in SB3
        self.ep_start = np.zeros((self.buffer_size, self.n_envs), dtype=np.int64)
        self.ep_length = np.zeros((self.buffer_size, self.n_envs), dtype=np.int64)
        self._current_ep_start = np.zeros(self.n_envs, dtype=np.int64)
        # per env: sampleable slots, the interval [_current_ep_start - n_valid, _current_ep_start)
        self.n_valid = np.zeros(self.n_envs, dtype=np.int64)
        if seed is None:
            seed = int(np.random.randint(0, 2**63 - 1, dtype=np.int64))
        self.rng = np.random.default_rng(seed)
        self._reward_fn: RewardFunction | None = None

    # ------------------------------------------------------------------ pickling (checkpoints)
    def __getstate__(self) -> dict[str, Any]:
        """The buffer without its env and, until it is full, only the ``pos`` rows written so far."""
        state = self.__dict__.copy()
        del state["env"]
        state["_reward_fn"] = None
        if not self.full:
            rows = self.pos
            state["observations"] = {key: array[:rows] for key, array in self.observations.items()}
            state["next_observations"] = {key: array[:rows] for key, array in self.next_observations.items()}
            for name in _ROW_ARRAYS:
                if state[name] is not None:
                    state[name] = state[name][:rows]
            state["_trimmed"] = True
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore a pickled buffer at its full capacity; call ``set_env`` before sampling."""
        state = dict(state)
        trimmed = state.pop("_trimmed", False)
        assert "env" not in state
        self.__dict__.update(state)
        self.env = None
        if trimmed:
            self.observations = {key: self._full_capacity(array) for key, array in self.observations.items()}
            self.next_observations = {key: self._full_capacity(array) for key, array in self.next_observations.items()}
            for name in _ROW_ARRAYS:
                if getattr(self, name) is not None:
                    setattr(self, name, self._full_capacity(getattr(self, name)))

    def _full_capacity(self, rows: np.ndarray) -> np.ndarray:
        full = (
            np.zeros((self.buffer_size,) + rows.shape[1:], dtype=rows.dtype)
            if rows.dtype != object
            else (np.empty((self.buffer_size,) + rows.shape[1:], dtype=object))
        )
        full[: len(rows)] = rows
        return full

    def set_env(self, env: VecEnv) -> None:
        """Attach the training env (after unpickling); its reward function is looked up on first use."""
        super().set_env(env)
        self._reward_fn = None

    def reset(self) -> None:
        """Empty the buffer, episode bookkeeping included."""
        super().reset()
        self.ep_length[:] = 0
        self.n_valid[:] = 0
        self._current_ep_start[:] = 0

    # ------------------------------------------------------------------ storing
    def add(  # type: ignore[override]
        self,
        obs: dict[str, np.ndarray],
        next_obs: dict[str, np.ndarray],
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        """Store one step of every environment; finished episodes become sampleable."""
        pos = self.pos
        # Overwriting starts at the oldest episode's first step: the whole episode stops being
        # sampleable (its later steps would otherwise relabel with goals from newer data).
        for env_idx in np.flatnonzero(self.ep_length[pos] > 0):
            episode_end = self.ep_start[pos, env_idx] + self.ep_length[pos, env_idx]
            slots = np.arange(pos, episode_end) % self.buffer_size
            self.n_valid[env_idx] -= np.count_nonzero(self.ep_length[slots, env_idx])
            self.ep_length[slots, env_idx] = 0
        self.ep_start[pos] = self._current_ep_start
        if self.infos is not None:
            for env_idx in range(self.n_envs):
                self.infos[pos, env_idx] = infos[env_idx]
        DictReplayBuffer.add(self, obs, next_obs, action, reward, done, infos)
        for env_idx in np.flatnonzero(done):
            self._compute_episode_length(int(env_idx))

    def _compute_episode_length(self, env_idx: int) -> None:
        """Close the episode of ``env_idx`` that ends at ``pos`` (exclusive): it joins the sampleable interval."""
        episode_start = self._current_ep_start[env_idx]
        episode_end = self.pos
        if episode_end < episode_start:
            episode_end += self.buffer_size  # the episode wraps around the end of the storage
        length = episode_end - episode_start
        slots = np.arange(episode_start, episode_end) % self.buffer_size
        self.ep_length[slots, env_idx] = length
        self.n_valid[env_idx] += length
        self._current_ep_start[env_idx] = self.pos

    # ------------------------------------------------------------------ sampling
    def _sample_slots(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """``(slot, env)`` indices drawn uniformly among all sampleable transitions of all envs."""
        total = int(self.n_valid.sum())
        if total == 0:
            raise RuntimeError(
                "Unable to sample before the end of the first episode. We recommend choosing a value "
                "for learning_starts that is greater than the maximum number of timesteps in the environment."
            )
        draws = self.rng.integers(total, size=batch_size)
        first_valid = (self._current_ep_start - self.n_valid) % self.buffer_size
        if self.n_envs == 1:
            env_indices = np.zeros(batch_size, dtype=np.int64)
            slots = (first_valid[0] + draws) % self.buffer_size
        else:
            ends = np.cumsum(self.n_valid)
            env_indices = np.searchsorted(ends, draws, side="right")
            offsets = draws - (ends - self.n_valid)[env_indices]
            slots = (first_valid[env_indices] + offsets) % self.buffer_size
        return slots, env_indices

    def _goal_slots(self, batch_indices: np.ndarray, env_indices: np.ndarray) -> np.ndarray:
        """Slots whose next ``achieved_goal`` becomes the new desired goal, per the goal selection strategy."""
        episode_start = self.ep_start[batch_indices, env_indices]
        episode_length = self.ep_length[batch_indices, env_indices]
        if self.goal_selection_strategy == GoalSelectionStrategy.FINAL:
            steps = episode_length - 1
        elif self.goal_selection_strategy == GoalSelectionStrategy.FUTURE:
            current_steps = (batch_indices - episode_start) % self.buffer_size
            steps = self.rng.integers(current_steps, episode_length)  # inclusive of the current step, as SB3 2.x
        elif self.goal_selection_strategy == GoalSelectionStrategy.EPISODE:
            steps = self.rng.integers(0, episode_length)
        else:  # pragma: no cover - the constructor admits only the three strategies
            raise ValueError(f"Strategy {self.goal_selection_strategy} for sampling goals not supported!")
        return (episode_start + steps) % self.buffer_size

    def _sample_goals(self, batch_indices: np.ndarray, env_indices: np.ndarray) -> np.ndarray:
        """New desired goals for the given transitions (SB3's method, with the buffer's generator)."""
        return self.next_observations[ACHIEVED_GOAL_KEY][self._goal_slots(batch_indices, env_indices), env_indices]

    def _reward_function(self) -> RewardFunction:
        if self._reward_fn is None:
            assert self.env is not None, (
                "You must initialize HerReplayBuffer with a VecEnv so it can compute rewards for virtual transitions"
            )
            self._reward_fn = batch_reward_function(self.env)
        return self._reward_fn

    def sample(  # type: ignore[override]
        self, batch_size: int, env: VecNormalize | None = None
    ) -> DictReplayBufferSamples:
        """A batch of ``batch_size`` transitions: real ones first, then the relabelled ones.

        :param batch_size: number of transitions.
        :param env: a ``VecNormalize`` to normalise observations and rewards with, as in SB3.
        """
        batch_indices, env_indices = self._sample_slots(batch_size)
        n_virtual = int(self.her_ratio * batch_size)
        n_real = batch_size - n_virtual
        # rows of the (buffer_size * n_envs, ...) views of the storage
        rows = batch_indices * self.n_envs + env_indices

        def gather(array: np.ndarray) -> np.ndarray:
            return array.reshape((-1,) + array.shape[2:]).take(rows, axis=0)

        observations = {key: gather(array) for key, array in self.observations.items()}
        next_observations = {key: gather(array) for key, array in self.next_observations.items()}
        rewards = gather(self.rewards)
        dones = gather(self.dones) * (1 - gather(self.timeouts))
        if n_virtual > 0:
            virtual_batch, virtual_env = batch_indices[n_real:], env_indices[n_real:]
            goal_rows = self._goal_slots(virtual_batch, virtual_env) * self.n_envs + virtual_env
            achieved = self.next_observations[ACHIEVED_GOAL_KEY]
            new_goals = achieved.reshape((-1,) + achieved.shape[2:]).take(goal_rows, axis=0)
            observations[DESIRED_GOAL_KEY][n_real:] = new_goals
            next_observations[DESIRED_GOAL_KEY][n_real:] = new_goals
            if self.infos is not None:
                infos: Any = copy.deepcopy(self.infos[virtual_batch, virtual_env])
            else:
                infos = [{} for _ in range(n_virtual)]
            # r_t = reward(achieved goal of s_{t+1}, new goal), as in SB3
            new_rewards = self._reward_function()(next_observations[ACHIEVED_GOAL_KEY][n_real:], new_goals, infos)
            rewards[n_real:] = np.asarray(new_rewards, dtype=np.float32).reshape(n_virtual)

        normalized_obs = self._normalize_obs(observations, env)
        normalized_next_obs = self._normalize_obs(next_observations, env)
        assert isinstance(normalized_obs, dict) and isinstance(normalized_next_obs, dict)
        return DictReplayBufferSamples(
            observations={key: self.to_torch(value, copy=False) for key, value in normalized_obs.items()},
            actions=self.to_torch(gather(self.actions), copy=False),
            next_observations={key: self.to_torch(value, copy=False) for key, value in normalized_next_obs.items()},
            dones=self.to_torch(dones.reshape(-1, 1), copy=False),
            rewards=self.to_torch(self._normalize_reward(rewards.reshape(-1, 1), env), copy=False),
        )
