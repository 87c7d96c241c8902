"""DDPG against Multi-ReenGAGE on DriveSeek and NoisySeek (Fig. 8.4 b, d), with the greedy agent's line.

One command writes every number and picture of ``docs/multi_goal.md``::

    python -m reengage.experiment.multi_goal --out docs

The paper trains 160k steps with an encoder [400, 400] -> 20 and heads [400] at batch 256. On the
2-core CPU of this project one such gradient step takes seconds, so the default budget here is far
smaller (see ``BUDGET``); every setting is printed into the results file. The metric is the paper's:
the average return of evaluation episodes (fixed evaluation seeds, deterministic policy).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

import reengage.envs  # noqa: F401  (registers the ids)
from reengage.agents import MultiReenGAGEDDPG
from reengage.envs.goal_set_greedy import greedy_agent

ENV_IDS = ("reengage/DriveSeek-v0", "reengage/NoisySeek-v0")
ACTION_NOISE = {"reengage/DriveSeek-v0": 0.05, "reengage/NoisySeek-v0": 0.1}  # Table G.4

# the budget this machine affords (2 shared CPU cores); Table G.4's values are in configs/*.yaml
BUDGET: dict[str, Any] = {
    "timesteps": 1200,
    "learning_starts": 400,
    "train_freq": 2,
    "batch_size": 64,
    "encoder_arch": [64, 64],
    "head_arch": [64],
    "embed_dim": 20,
    "learning_rate": 1e-3,
    "gamma": 0.95,
    "tau": 0.005,
    "buffer_size": 1_000_000,
    "eval_every": 400,
    "eval_episodes": 20,
    "eval_seed": 1_000_000,
}


def evaluate(model: Any, env_id: str, episodes: int, seed: int) -> float:
    """Average return over ``episodes`` episodes with seeds ``seed, seed + 1, ...``."""
    env = gym.make(env_id)
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += reward
            done = terminated or truncated
        returns.append(total)
    env.close()
    return float(np.mean(returns))


def make_agent(env_id: str, alpha: float, seed: int, budget: dict[str, Any]) -> MultiReenGAGEDDPG:
    from stable_baselines3.common.noise import NormalActionNoise

    env = gym.make(env_id)
    dim = env.action_space.shape[0]
    return MultiReenGAGEDDPG(
        "DeepSetsPolicy",
        env,
        reengage_alpha=alpha,
        learning_rate=budget["learning_rate"],
        buffer_size=budget["buffer_size"],
        learning_starts=budget["learning_starts"],
        batch_size=budget["batch_size"],
        tau=budget["tau"],
        gamma=budget["gamma"],
        train_freq=budget["train_freq"],
        gradient_steps=1,
        action_noise=NormalActionNoise(np.zeros(dim), ACTION_NOISE[env_id] * np.ones(dim)),
        policy_kwargs={
            "encoder_arch": budget["encoder_arch"],
            "net_arch": budget["head_arch"],
            "embed_dim": budget["embed_dim"],
        },
        seed=seed,
        device="cpu",
    )


def run_one(env_id: str, alpha: float, seed: int, budget: dict[str, Any], progress: tqdm) -> dict[str, Any]:
    model = make_agent(env_id, alpha, seed, budget)
    steps, scores = [0], [evaluate(model, env_id, budget["eval_episodes"], budget["eval_seed"])]
    start = time.perf_counter()
    while model.num_timesteps < budget["timesteps"]:
        chunk = min(budget["eval_every"], budget["timesteps"] - model.num_timesteps)
        model.learn(chunk, reset_num_timesteps=False)
        steps.append(int(model.num_timesteps))
        scores.append(evaluate(model, env_id, budget["eval_episodes"], budget["eval_seed"]))
        progress.update(chunk)
    seconds = time.perf_counter() - start
    return {"steps": steps, "scores": scores, "train_seconds": seconds, "model": model}


def draw_episode(model: Any, env_id: str, seed: int, title: str) -> np.ndarray:
    env = gym.make(env_id, render_mode="rgb_array")
    obs, _ = env.reset(seed=seed)
    done = False
    while not done:
        action, _ = model.predict(obs, deterministic=True)
        obs, _, terminated, truncated, _ = env.step(action)
        done = terminated or truncated
    picture = env.unwrapped.draw(title=title)
    env.close()
    return picture


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--alpha", type=float, default=10.0, help="Multi-ReenGAGE alpha (Table G.4: 5, 10, 20)")
    parser.add_argument("--timesteps", type=int, default=BUDGET["timesteps"])
    parser.add_argument("--envs", nargs="+", default=list(ENV_IDS), choices=ENV_IDS)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core box)")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
    torch.set_num_threads(args.threads)
    budget = {**BUDGET, "timesteps": args.timesteps}
    args.out.mkdir(parents=True, exist_ok=True)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    agents = {"DDPG": 0.0, f"Multi-ReenGAGE (alpha={args.alpha:g})": args.alpha}
    results: dict[str, Any] = {"budget": budget, "seeds": args.seeds, "envs": {}}
    total = len(args.envs) * len(agents) * args.seeds * budget["timesteps"]
    progress = tqdm(total=total, desc="env steps", unit="step")
    for env_id in args.envs:
        greedy = greedy_agent(env_id)
        greedy_score = evaluate(greedy, env_id, budget["eval_episodes"], budget["eval_seed"])
        greedy_100 = evaluate(greedy, env_id, 100, budget["eval_seed"])
        per_env: dict[str, Any] = {"greedy": greedy_score, "greedy_100_episodes": greedy_100, "agents": {}}
        pictures = [draw_episode(greedy, env_id, budget["eval_seed"], "greedy")]
        for name, alpha in agents.items():
            runs = []
            for seed in range(args.seeds):
                run = run_one(env_id, alpha, seed, budget, progress)
                if seed == 0:
                    pictures.append(draw_episode(run["model"], env_id, budget["eval_seed"], f"{name}, seed 0"))
                del run["model"]
                runs.append(run)
            per_env["agents"][name] = runs
        results["envs"][env_id] = per_env
        short = env_id.split("/")[1].split("-")[0]
        figure, axes = plt.subplots(1, len(pictures), figsize=(4 * len(pictures), 4))
        for axis, picture in zip(axes, pictures):
            axis.imshow(picture)
            axis.axis("off")
        figure.tight_layout()
        figure.savefig(args.out / f"multi_goal_{short}_episodes.png", dpi=100)
        plt.close(figure)
    progress.close()

    figure, axes = plt.subplots(1, len(args.envs), figsize=(5.5 * len(args.envs), 4), squeeze=False)
    lines = ["| environment | agent | return at 0 steps | final return (mean ± std over seeds) | train s/run |",
             "|---|---|---|---|---|"]
    for axis, env_id in zip(axes[0], args.envs):
        per_env = results["envs"][env_id]
        for name, runs in per_env["agents"].items():
            scores = np.array([run["scores"] for run in runs])
            steps = runs[0]["steps"]
            axis.plot(steps, scores.mean(0), label=name)
            axis.fill_between(steps, scores.mean(0) - scores.std(0), scores.mean(0) + scores.std(0), alpha=0.2)
            seconds = np.mean([run["train_seconds"] for run in runs])
            lines.append(
                f"| {env_id} | {name} | {scores[:, 0].mean():.2f} | {scores[:, -1].mean():.2f} ± "
                f"{scores[:, -1].std():.2f} | {seconds:.0f} |"
            )
        axis.axhline(per_env["greedy"], color="k", ls="--", label="greedy (nearest goal)")
        lines.append(f"| {env_id} | greedy (nearest goal) | - | {per_env['greedy']:.2f} "
                     f"(100 episodes: {per_env['greedy_100_episodes']:.2f}) | - |")
        axis.set_title(f"{env_id} ({args.seeds} seeds, mean ± std)")
        axis.set_xlabel("environment steps")
        axis.set_ylabel(f"average return ({budget['eval_episodes']} eval episodes)")
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(args.out / "multi_goal_curves.png", dpi=100)
    plt.close(figure)

    table = "\n".join(lines)
    (args.out / "multi_goal_results.md").write_text(
        "<!-- written by: python -m reengage.experiment.multi_goal "
        f"--out {args.out} --seeds {args.seeds} --alpha {args.alpha:g} --timesteps {budget['timesteps']} -->\n"
        f"Budget: `{json.dumps(budget)}`\n\n{table}\n"
    )
    (args.out / "multi_goal_results.json").write_text(json.dumps(results, indent=1))
    print(table)


if __name__ == "__main__":
    main()
