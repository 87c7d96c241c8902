"""One training run: build or resume the agent, evaluate, checkpoint, log to TensorBoard.

This is the single training loop behind ``train.py``; every algorithm goes through it.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import yaml
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import configure
from tqdm.auto import tqdm

from .build import agent_class, build_agent, check_device, make_single_env, make_training_env
from .checkpoint import find_checkpoint, load_checkpoint, previous_checkpoint, save_checkpoint
from .evaluation import evaluate_goal_policy

CONFIG_FILE = "config.yaml"
EVALUATIONS_FILE = "evaluations.csv"
FINAL_MODEL = "model.zip"
SEGMENTS_FILE = "segments.json"
CHECKPOINT_DIR = "checkpoint"

# keys that may differ between the killed run and its resumption without changing the result
_RESUME_FREE_KEYS = {"timesteps"}


class EvaluateAndCheckpoint(BaseCallback):
    """Evaluates every ``eval_freq`` steps and checkpoints every ``checkpoint_every`` steps.

    Both act at the start of a rollout, when the previous step has been stored and trained on:
    the only moment at which the agent, its buffer and the environment agree with one another.
    """

    def __init__(self, config: dict[str, Any], run_dir: Path, run_state: dict[str, Any]) -> None:
        super().__init__()
        self.config = config
        self.run_dir = run_dir
        self.run_state = run_state
        # evaluation sees the same observation noise as training, from a generator of its own
        self.eval_env = make_single_env(config, noise_seed=config["eval_seed"])

    def _due(self, frequency: int, last: int) -> bool:
        return frequency > 0 and self.num_timesteps >= (last // frequency + 1) * frequency

    def evaluate(self) -> None:
        result = evaluate_goal_policy(
            self.model, self.eval_env, self.config["eval_episodes"], self.config["eval_seed"]
        )
        row = {"step": self.num_timesteps, **result.as_scalars()}
        self.run_state["evaluations"].append(row)
        self.run_state["last_eval"] = self.num_timesteps
        for key, value in result.as_scalars().items():
            self.logger.record(key, value)
        self.logger.dump(self.num_timesteps)
        write_evaluations(self.run_dir / EVALUATIONS_FILE, self.run_state["evaluations"])

    def _on_rollout_start(self) -> None:
        if self._due(self.config["eval_freq"], self.run_state["last_eval"]):
            self.evaluate()
        if self._due(self.config["checkpoint_every"], self.run_state["last_checkpoint"]):
            self.run_state["last_checkpoint"] = self.num_timesteps
            save_checkpoint(self.run_dir / CHECKPOINT_DIR, self.model, self.run_state)

    def _on_step(self) -> bool:
        return True


class ProgressBar(BaseCallback):
    def __init__(self, total: int, start: int, description: str) -> None:
        super().__init__()
        self.bar = tqdm(total=total, initial=start, desc=description, unit="step", dynamic_ncols=True)

    def _on_step(self) -> bool:
        self.bar.update(1)
        return True

    def _on_training_end(self) -> None:
        self.bar.close()


def write_evaluations(path: Path, rows: list[dict[str, float]]) -> None:
    if not rows:
        return
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _check_resumable(saved: dict[str, Any], config: dict[str, Any]) -> None:
    changed = sorted(k for k in set(saved) | set(config) if k not in _RESUME_FREE_KEYS and saved.get(k) != config.get(k))
    if changed:
        details = "; ".join(f"{k}: {saved.get(k)!r} -> {config.get(k)!r}" for k in changed)
        raise ValueError(f"--resume with a different configuration would not continue the same run ({details})")


def train_run(
    config: dict[str, Any],
    seed: int,
    logdir: str | Path,
    device: str = "cpu",
    resume: bool = False,
    progress: bool = True,
) -> Path:
    """Train (or resume) one run into ``logdir``; returns the path of the final model."""
    run_dir = Path(logdir)
    check_device(device)
    record = {**config, "seed": seed}
    if resume:
        checkpoint = find_checkpoint(run_dir / CHECKPOINT_DIR)
        if checkpoint is None:
            raise ValueError(f"--resume: no checkpoint in {run_dir / CHECKPOINT_DIR}; start the run without --resume")
        with open(run_dir / CONFIG_FILE) as handle:
            _check_resumable(yaml.safe_load(handle), record)
        model, run_state = load_checkpoint(checkpoint, agent_class(config), device)
    else:
        if (run_dir / CONFIG_FILE).exists():
            raise ValueError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --logdir")
        run_dir.mkdir(parents=True, exist_ok=True)
        model = build_agent(config, make_training_env(config, seed), seed, device)
        run_state = {"evaluations": [], "last_eval": 0, "last_checkpoint": 0, "segments": []}
    with open(run_dir / CONFIG_FILE, "w") as handle:
        yaml.safe_dump(record, handle, sort_keys=True)

    # where each process started: a resumed run shows the checkpoint step it continued from
    run_state.setdefault("segments", []).append({"start": int(model.num_timesteps), "resumed": bool(resume)})
    model.set_logger(configure(str(run_dir), ["tensorboard"]))
    remaining = config["timesteps"] - model.num_timesteps
    evaluator = EvaluateAndCheckpoint(config, run_dir, run_state)
    evaluator.init_callback(model)
    callbacks: list[BaseCallback] = [evaluator]
    if progress:
        label = f"{config['algo']} a={config['reengage_alpha']:g} {config['env_id']} seed {seed}"
        callbacks.append(ProgressBar(config["timesteps"], model.num_timesteps, label))
    if remaining > 0:
        # reset_num_timesteps=False for fresh runs too: one code path, whether resumed or not
        model.learn(remaining, callback=CallbackList(callbacks), reset_num_timesteps=False)
    if run_state["last_eval"] < model.num_timesteps:
        evaluator.evaluate()
    final = run_dir / FINAL_MODEL
    model.save(final)
    run_state["segments"][-1]["end"] = int(model.num_timesteps)
    (run_dir / SEGMENTS_FILE).write_text(json.dumps(run_state["segments"], indent=1))
    if config.get("observation_noise"):
        from reengage.robustness.noise import SmoothingConfig, save_sidecar

        smoothing = SmoothingConfig.from_dict(dict(config["observation_noise"]))
        save_sidecar(final, smoothing, {"algorithm": type(model).__name__, "seed": seed})
    shutil.rmtree(previous_checkpoint(run_dir / CHECKPOINT_DIR), ignore_errors=True)
    return final
