"""Evaluate a trained run from its folder (rl-baselines3-zoo calls this ``enjoy``).

    python -m reengage.evaluate RUN_DIR [--episodes N] [--seed S] [--video FILE] [--picture FILE.png]
        [--no-deterministic]

The configuration and the environment (observation-noise wrapper included) come from the run folder.
With the defaults (the run's ``eval_episodes`` episodes from its ``eval_seed``, deterministic actions)
the numbers are those of the run's own last evaluation. ``--video run.gif`` records the first episode
(``--video-episodes K`` for more); ``.mp4`` needs the ``video`` extra. ``--picture episode.png`` saves the
last frame of the first episode: for DriveSeek and NoisySeek, the drawing of the whole episode (Fig. 8.4 a, c).
Both are written into an existing folder (a missing one is refused before the episodes run). A file that cannot
be written (permissions, a full disk) exits with code 2 or 1 and one line saying why.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

from reengage.experiment.run_folder import MODEL_FILE, RunFolder


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m reengage.evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run_dir", help="a run folder written by train.py")
    parser.add_argument("--episodes", type=int, default=None, help="episodes (default: the run's eval_episodes)")
    parser.add_argument(
        "--seed", type=int, default=None, help="seed of the first episode, then +1 each (default: the run's eval_seed)"
    )
    parser.add_argument(
        "--deterministic",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="greedy actions (default), or --no-deterministic to sample the policy",
    )
    parser.add_argument(
        "--video", default=None, metavar="FILE", help="record episodes to FILE (.gif, or .mp4 with the video extra)"
    )
    parser.add_argument("--video-episodes", type=int, default=1, help="episodes to record (default 1)")
    parser.add_argument("--fps", type=int, default=4, help="frames per second of the video")
    parser.add_argument(
        "--picture",
        default=None,
        metavar="FILE.png",
        help="save the last frame of the first episode (the goal-set envs draw the whole episode)",
    )
    parser.add_argument("--checkpoint", action="store_true", help="evaluate the newest checkpoint, not model.zip")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--json", action="store_true", help="print the per-episode results as JSON too")
    return parser.parse_args(argv)


def _error(message: str) -> int:
    print(f"evaluate: error: {message}", file=sys.stderr)
    return 2


def last_run_evaluation(run_dir: Path) -> dict[str, Any] | None:
    path = RunFolder(run_dir).evaluations_file
    if not path.exists():
        return None
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    return rows[-1] if rows else None


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except OSError as fault:
        # the file system refused a read or a write (permissions, a full disk, a name too long)
        from reengage.file_faults import describe_fault, fault_exit_code

        print(f"evaluate: error: {describe_fault(fault)}; nothing was written", file=sys.stderr)
        return fault_exit_code(fault)


def _main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for name, value, low in (
        ("--episodes", args.episodes, 1),
        ("--seed", args.seed, 0),
        ("--video-episodes", args.video_episodes, 1),
        ("--fps", args.fps, 1),
    ):
        if value is not None and value < low:
            return _error(f"{name} must be >= {low}, got {value}")
    import torch

    torch.set_num_threads(1)
    from reengage.experiment.evaluation import evaluate_goal_policy
    from reengage.experiment.run_folder import make_run_env
    from reengage.experiment.video import check_picture_path, check_video_path, write_picture, write_video

    run_dir = Path(args.run_dir)
    try:
        if args.video:
            check_video_path(args.video)
        if args.picture:
            check_picture_path(args.picture)
        config, model = RunFolder(run_dir).load_model(args.device, checkpoint=args.checkpoint)
    except ValueError as error:
        return _error(str(error))
    episodes = config["eval_episodes"] if args.episodes is None else args.episodes
    seed = config["eval_seed"] if args.seed is None else args.seed
    video_episodes = min(args.video_episodes, episodes) if args.video else 0
    # the picture is the first episode's last frame: that episode is recorded even without a video
    recording = max(video_episodes, 1 if args.picture else 0)
    # the noise generator is seeded as in the run's evaluations, so the same settings give the same numbers
    env = make_run_env(config, noise_seed=seed, render_mode="rgb_array" if recording else None)
    try:
        result = evaluate_goal_policy(model, env, episodes, seed, args.deterministic, record_episodes=recording)
    finally:
        env.close()
    source = "checkpoint" if args.checkpoint else MODEL_FILE
    print(
        f"{config['env_id']} {config['algo']} alpha {config['reengage_alpha']:g} seed {config['seed']} "
        f"({source}, step {model.num_timesteps}), episodes from seed {seed}, "
        f"{'deterministic' if args.deterministic else 'stochastic'}:"
    )
    print(f"  {result.summary()}, mean length {float(result.lengths.mean()):.1f}")
    last = last_run_evaluation(run_dir)
    if last is not None:
        print(
            f"  the run's last evaluation (step {last['step']}): "
            + ", ".join(
                f"{key.split('/')[-1]} {float(value):.2f}"
                for key, value in last.items()
                if key.startswith("eval/") and key != "eval/success_rate" and value not in ("nan", "")
            )
        )
    if args.json:
        print(json.dumps(result.episode_rows(int(model.num_timesteps))))
    if video_episodes:
        path = write_video(args.video, result.frames, fps=args.fps)
        print(f"video: {path} ({len(result.frames)} frames, {video_episodes} episode(s))")
    if args.picture:
        path = write_picture(args.picture, result.final_frame(0))
        print(f"picture: {path} (episode seed {seed}, return {float(result.returns[0]):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
