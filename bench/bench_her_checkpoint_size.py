#!/usr/bin/env python
"""Checkpoint size of a training run with SB3's HerReplayBuffer against FastHerReplayBuffer.

    python bench/bench_her_checkpoint_size.py [--env reengage/ContinuousSeek5-v0] [--algo ddpg]
                                              [--steps 1500] [--buffer-size 1000000] [--json]

Runs train.py's loop (``reengage.experiment.runner.train_run``) twice for ``--steps`` steps with a
checkpoint at the last step, once with the config's HER buffer (SB3's) and once with
``her: null, replay_buffer_class: FastHerReplayBuffer`` and the same HER settings, and prints the size
of each checkpoint's replay buffer file and of the whole checkpoint folder.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from reengage.experiment.config import resolve_config
from reengage.experiment.run_folder import CHECKPOINT_DIR
from reengage.experiment.runner import train_run

FAST_HER_CLASS = "reengage.agents.her_replay:FastHerReplayBuffer"


def _folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def measure_checkpoint_sizes(env_id: str, algo: str, steps: int, buffer_size: int, seed: int = 0) -> dict[str, Any]:
    """Bytes of the replay buffer file and of the checkpoint folder after ``steps`` steps, per buffer."""
    # one step more than the checkpoint interval: a checkpoint is written when a rollout starts
    base = resolve_config(
        env_id,
        algo,
        None,
        steps + 1,
        [f"buffer_size={buffer_size}", f"checkpoint_every={steps}", f"eval_freq={steps + 1}", "eval_episodes=1"],
    )
    if base["her"] is None:
        raise ValueError(f"the config of {env_id} with {algo} uses no HER buffer; choose an env with goals")
    fast = dict(
        base,
        her=None,
        replay_buffer_class=FAST_HER_CLASS,
        replay_buffer_kwargs={**base["her"], **base["replay_buffer_kwargs"]},
    )
    result: dict[str, Any] = {"env": env_id, "algo": algo, "steps": steps, "buffer_size": buffer_size}
    with tempfile.TemporaryDirectory() as scratch:
        for name, config in (("sb3", base), ("fast", fast)):
            run_dir = Path(scratch) / name
            train_run(config, seed, run_dir, progress=False)
            checkpoint = run_dir / CHECKPOINT_DIR
            result[name] = {
                "replay_buffer_bytes": (checkpoint / "replay_buffer.pkl").stat().st_size,
                "checkpoint_bytes": _folder_bytes(checkpoint),
            }
    result["buffer_ratio"] = result["sb3"]["replay_buffer_bytes"] / result["fast"]["replay_buffer_bytes"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="reengage/ContinuousSeek5-v0")
    parser.add_argument("--algo", default="ddpg")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--buffer-size", type=int, default=1_000_000)
    parser.add_argument("--json", action="store_true", help="also print the result as one JSON line")
    args = parser.parse_args()
    if args.steps < 1 or args.buffer_size < 1:
        parser.error(f"--steps and --buffer-size must be >= 1, got {args.steps} and {args.buffer_size}")
    try:
        result = measure_checkpoint_sizes(args.env, args.algo, args.steps, args.buffer_size)
    except ValueError as error:  # an unknown env or algo, or one without HER
        parser.error(str(error))
    mb = 1e6
    print(f"{args.env} {args.algo}, checkpoint after {args.steps} steps, buffer capacity {args.buffer_size:,}")
    for name in ("sb3", "fast"):
        sizes = result[name]
        print(
            f"  {name:4s}: replay_buffer.pkl {sizes['replay_buffer_bytes'] / mb:9.2f} MB, "
            f"checkpoint folder {sizes['checkpoint_bytes'] / mb:9.2f} MB"
        )
    print(f"  ratio of replay buffer files SB3/fast: {result['buffer_ratio']:.0f}x")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
