"""One training run: build or resume the agent, evaluate, checkpoint, log to TensorBoard.

This is the single training loop behind ``train.py``; every algorithm goes through it.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import HParam, configure
from tqdm.auto import tqdm

from reengage.file_faults import describe_fault

from .build import agent_class, build_agent, check_device, check_replay_memory, make_single_env, make_training_env
from .checkpoint import checkpoint_candidates, load_latest_checkpoint, save_checkpoint
from .evaluation import MEAN_RETURN, SUCCESS_EVER, EvaluationResult, evaluate_goal_policy, reports_success
from .resume import check_resume, refuse_fresh_start, run_progress
from .run_folder import CHECKPOINT_DIR, RunFolder, check_logdir_path, own_run_folder
from .stop_signals import STOP_SIGNALS, ignore_stop_signals

# a run expected to take longer than this says so at its start
LONG_RUN_SECONDS = 3600.0


def say(message: str) -> None:
    """Print one line without breaking the progress bar."""
    tqdm.write(message)


class RunInterrupted(Exception):
    """SIGINT or SIGTERM stopped the run after it saved a checkpoint at ``step``; or, with ``fault``, after the
    checkpoint at ``step`` could not be written (the newest complete one before it is kept)."""

    def __init__(self, run_dir: Path, step: int, signal_number: int, fault: OSError | None = None) -> None:
        self.run_dir, self.step, self.signal_number, self.fault = Path(run_dir), step, signal_number, fault
        name = signal.Signals(signal_number).name
        if fault is None:
            message = (
                f"{name} at step {step}: checkpoint saved in {self.run_dir / CHECKPOINT_DIR}; "
                f"continue with: python train.py --logdir {self.run_dir} --resume"
            )
        else:
            message = (
                f"{name} at step {step}: the checkpoint could not be written ({describe_fault(fault)}); "
                f"{continue_advice(self.run_dir)}"
            )
        super().__init__(message)

    @property
    def exit_code(self) -> int:
        return 128 + self.signal_number


class RunPruned(Exception):
    """An evaluation hook (a tuning study's pruner) stopped the run at ``step``: it is neither finished nor
    resumed later; its folder keeps the evaluations made so far."""

    def __init__(self, step: int, value: float, reason: str) -> None:
        self.step, self.value = step, value
        super().__init__(f"pruned at step {step} ({reason})")


# called after every evaluation with the step and every evaluations.csv row so far; raises RunPruned to stop
EvaluationHook = Callable[[int, list[dict[str, Any]]], None]


class StopRequest:
    """Turns SIGINT/SIGTERM into a request that the training loop honours at its next consistent point
    (a rollout start); a second signal stops at once (KeyboardInterrupt; the last complete checkpoint
    stays on disk). Installed only in the main thread: elsewhere Python cannot take signals. A signal the
    process ignores stays ignored: a grid worker leaves SIGINT (the terminal's Ctrl-C, sent to every
    process of the group) to its driver, and a job started with ``nohup`` or ``&`` keeps what the shell set."""

    SIGNALS = STOP_SIGNALS

    def __init__(self, announce: bool = True) -> None:
        self.signal_number: int | None = None
        self.stopped_at_once = False
        self.announce = announce
        self._previous: dict[int, Any] = {}

    def _handle(self, signal_number: int, frame: Any) -> None:
        if self.signal_number is not None:
            # stopping at once: from here on a third signal (an impatient user) is ignored, so it cannot land
            # between this raise and the handler that reports the stop and turn the exit into a traceback
            self.stopped_at_once = True
            ignore_stop_signals()
            raise KeyboardInterrupt
        self.signal_number = signal_number
        if self.announce:
            say(
                f"{signal.Signals(signal_number).name} received: saving a checkpoint at the next step "
                "(send it again to stop at once)"
            )

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for number in self.SIGNALS:
                if signal.getsignal(number) is not signal.SIG_IGN:
                    self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.stopped_at_once:
            return  # the process is stopping: the signals stay ignored until it has exited
        for number, handler in self._previous.items():
            signal.signal(number, handler)


class EvaluateAndCheckpoint(BaseCallback):
    """Evaluates every ``eval_freq`` steps, checkpoints every ``checkpoint_every`` steps, and stops
    with a checkpoint when a signal asked for it.

    All three act at the start of a rollout, when the previous step has been stored and trained on:
    the only moment at which the agent, its buffer and the environment agree with one another.
    """

    def __init__(
        self,
        config: dict[str, Any],
        folder: RunFolder,
        run_state: dict[str, Any],
        stop: StopRequest | None = None,
        verbose_lines: bool = True,
        on_evaluation: EvaluationHook | None = None,
    ) -> None:
        super().__init__()
        self.on_evaluation = on_evaluation
        self.config = config
        self.folder = folder
        # what config.yaml holds (configuration and seed): each checkpoint carries a copy of it
        self.run_config = folder.read_config()
        self.run_state = run_state
        self.stop = stop
        self.verbose_lines = verbose_lines

    def _due(self, frequency: int, last: int) -> bool:
        return frequency > 0 and self.num_timesteps >= (last // frequency + 1) * frequency

    def evaluate(self) -> EvaluationResult:
        # a fresh environment each time (observation noise included, from its own seeded generator):
        # every evaluation sees the same episodes, and `python -m reengage.evaluate` can replay it
        eval_env = make_single_env(self.config, noise_seed=self.config["eval_seed"])
        try:
            result = evaluate_goal_policy(self.model, eval_env, self.config["eval_episodes"], self.config["eval_seed"])
        finally:
            eval_env.close()
        self.run_state["evaluations"].append(result.csv_row(self.num_timesteps))
        self.run_state.setdefault("episodes", []).extend(result.episode_rows(self.num_timesteps))
        self.run_state["last_eval"] = self.num_timesteps
        for key, value in result.as_scalars().items():
            self.logger.record(key, value)
        self.logger.dump(self.num_timesteps)
        self.folder.write_evaluations(self.run_state["evaluations"])
        self.folder.write_episodes(self.run_state["episodes"])
        if self.verbose_lines:
            say(f"eval step {self.num_timesteps}: {result.summary()}")
        if self.on_evaluation is not None:
            self.on_evaluation(self.num_timesteps, self.run_state["evaluations"])
        return result

    def checkpoint(self) -> None:
        self.run_state["last_checkpoint"] = self.num_timesteps
        save_checkpoint(self.folder.checkpoint_dir, self.model, self.run_state, self.run_config)

    def _stopping(self) -> bool:
        return self.stop is not None and self.stop.signal_number is not None

    def _on_rollout_start(self) -> None:
        if self._due(self.config["eval_freq"], self.run_state["last_eval"]):
            self.evaluate()
        stopping = self._stopping()
        if stopping or self._due(self.config["checkpoint_every"], self.run_state["last_checkpoint"]):
            try:
                self.checkpoint()
            except OSError as fault:
                if not stopping:
                    raise  # train.py names the file, the fault and how to continue
                # the user asked to stop: stop, and say that this checkpoint is missing
                raise RunInterrupted(
                    self.folder.path,
                    self.num_timesteps,
                    self.stop.signal_number,  # type: ignore[union-attr]
                    fault,
                ) from None
        if self._stopping():
            raise RunInterrupted(self.folder.path, self.num_timesteps, self.stop.signal_number)  # type: ignore[union-attr]

    def _on_step(self) -> bool:
        return True


class DurationEstimate(BaseCallback):
    """Times ``window`` training steps once learning has started and, if the rest of the run would
    take longer than ``threshold_s``, says so with the estimate (evaluations not counted)."""

    def __init__(
        self,
        total: int,
        learning_starts: int,
        window: int,
        threshold_s: float = LONG_RUN_SECONDS,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        super().__init__()
        self.total, self.learning_starts, self.window = total, learning_starts, window
        self.threshold_s, self.clock = threshold_s, clock
        self.start: tuple[int, float] | None = None
        self.done = False
        self.estimate_s: float | None = None

    def _on_step(self) -> bool:
        if self.done or self.num_timesteps <= self.learning_starts:
            return True
        if self.start is None:
            self.start = (self.num_timesteps, self.clock())
            return True
        steps = self.num_timesteps - self.start[0]
        if steps >= self.window:
            per_step = (self.clock() - self.start[1]) / steps
            self.estimate_s = per_step * (self.total - self.num_timesteps)
            self.done = True
            if self.estimate_s > self.threshold_s:
                say(
                    f"note: this run needs about {format_duration(self.estimate_s)} more at this pace "
                    f"({per_step * 1000:.1f} ms/step over {steps} steps, evaluations not counted); "
                    "Ctrl-C saves a checkpoint, and --resume continues"
                )
        return True


def continue_advice(run_dir: Path) -> str:
    """How to go on with the run in ``run_dir`` after it stopped early, from what its folder holds."""
    folder = RunFolder(run_dir)
    try:
        candidates = checkpoint_candidates(folder.checkpoint_dir)
        started = folder.config_file.is_file()
    except OSError:  # a path the system refuses (a name too long): nothing of it was written
        return "nothing was written"
    if candidates:
        step = candidates[0][1]
        kept = f"the newest complete checkpoint{'' if step is None else f' (step {step})'} is kept"
        return f"{kept}; then continue with: python train.py --logdir {run_dir} --resume"
    if started:
        return "no checkpoint was written; then start over: the same command with --restart"
    return "nothing was written" if not folder.path.is_dir() else "then run the command again"


def format_duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


class ProgressBar(BaseCallback):
    def __init__(self, total: int, start: int, description: str) -> None:
        super().__init__()
        self.bar = tqdm(total=total, initial=start, desc=description, unit="step", dynamic_ncols=True)

    def _on_step(self) -> bool:
        self.bar.update(1)
        return True

    def _on_training_end(self) -> None:
        self.bar.close()


def hyperparameters(config: dict[str, Any], seed: int) -> dict[str, bool | str | float | int]:
    """The config flattened for TensorBoard's HParams (dotted keys; lists and null as text)."""
    flat: dict[str, bool | str | float | int] = {"seed": seed}

    def visit(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            if not value:
                flat[prefix] = "{}"
            for key, inner in value.items():
                visit(f"{prefix}.{key}", inner)
        elif isinstance(value, (bool, str, int, float)):
            flat[prefix] = value
        else:
            flat[prefix] = "null" if value is None else str(value)

    for key, value in sorted(config.items()):
        visit(key, value)
    return flat


def train_run(
    config: dict[str, Any],
    seed: int,
    logdir: str | Path,
    device: str = "cpu",
    resume: bool = False,
    progress: bool = True,
    restart: bool = False,
    verbose: bool = True,
    on_evaluation: EvaluationHook | None = None,
) -> Path:
    """Train, resume or extend one run in ``logdir``; returns the path of the final model.

    ``resume`` continues from the newest readable checkpoint (``config["timesteps"]`` may extend a
    finished run, never shorten it); ``restart`` deletes what an earlier run wrote there and starts
    over. ``verbose`` prints one line per evaluation, a duration warning for long runs and a summary.
    Raises ValueError (with what to do) for a refused start, and :class:`RunInterrupted` after a
    SIGINT/SIGTERM, once the checkpoint is saved. ``on_evaluation`` is called after each evaluation (a tuning
    study reports to its pruner there) and may stop the run by raising :class:`RunPruned`. A folder another live process trains is refused with
    :class:`~reengage.experiment.run_folder.RunFolderBusy` (a ValueError) before anything in it is read,
    written or removed; this process owns the folder until training ends.
    """
    run_dir = Path(logdir)
    check_device(device)
    check_logdir_path(run_dir)
    if resume and restart:
        raise ValueError("--resume and --restart exclude each other: continue the run, or start it over")
    check_replay_memory(config)
    # owned before the resume decision and before --restart clears anything: two writers would interleave
    # checkpoints, evaluations and event files. A resume of a missing folder creates nothing (it is refused).
    with own_run_folder(run_dir, create=not resume):
        # signals are caught from here on: one arriving while the agent is built stops it at step 0, saved
        with StopRequest(announce=verbose) as stop:
            return _train_run(config, seed, run_dir, device, resume, progress, restart, verbose, stop, on_evaluation)


def _train_run(
    config: dict[str, Any],
    seed: int,
    run_dir: Path,
    device: str,
    resume: bool,
    progress: bool,
    restart: bool,
    verbose: bool,
    stop: StopRequest,
    on_evaluation: EvaluationHook | None,
) -> Path:
    record = {**config, "seed": seed}
    folder = RunFolder(run_dir)
    on_disk = run_progress(folder)  # what the folder holds before this process writes to it
    if resume:
        if not check_resume(on_disk, record):
            if verbose:
                say(f"{run_dir} already finished its {on_disk.finished_step} steps; nothing to do")
            return folder.model_file
        model, run_state, source = load_latest_checkpoint(folder.checkpoint_dir, agent_class(config), device, warn=say)
        if verbose:
            say(f"resuming {run_dir} from step {model.num_timesteps} ({source.name})")
    else:
        if restart:
            folder.clear()
        else:
            refuse_fresh_start(on_disk)
        run_dir.mkdir(parents=True, exist_ok=True)
        model = build_agent(config, make_training_env(config, seed), seed, device)
        run_state = {"evaluations": [], "episodes": [], "last_eval": 0, "last_checkpoint": 0, "segments": []}
    folder.write_config(record)

    # where each process started: a resumed run shows the checkpoint step it continued from
    run_state.setdefault("segments", []).append({"start": int(model.num_timesteps), "resumed": bool(resume)})
    model.set_logger(configure(str(run_dir), ["tensorboard"]))
    if not resume:
        # the metrics HParams shows beside the settings: the success rate only where it means something
        probe = make_single_env(config)
        metrics = {SUCCESS_EVER: 0.0, MEAN_RETURN: 0.0} if reports_success(probe) else {MEAN_RETURN: 0.0}
        probe.close()
        model.logger.record(
            "hparams", HParam(hyperparameters(config, seed), metrics), exclude=("stdout", "log", "json", "csv")
        )
        model.logger.dump(0)
    remaining = config["timesteps"] - model.num_timesteps
    began, first_step = time.perf_counter(), int(model.num_timesteps)
    evaluator = EvaluateAndCheckpoint(
        config, folder, run_state, stop, verbose_lines=verbose, on_evaluation=on_evaluation
    )
    evaluator.init_callback(model)
    callbacks: list[BaseCallback] = [evaluator]
    if verbose:
        window = max(200, 2 * config["train_freq"])
        callbacks.append(DurationEstimate(config["timesteps"], config["learning_starts"], window))
    if progress:
        label = f"{config['algo']} a={config['reengage_alpha']:g} {config['env_id']} seed {seed}"
        callbacks.append(ProgressBar(config["timesteps"], model.num_timesteps, label))
    if remaining > 0:
        # reset_num_timesteps=False for fresh runs too: one code path, whether resumed or not
        try:
            model.learn(remaining, callback=CallbackList(callbacks), reset_num_timesteps=False)
        except BaseException as error:
            for callback in callbacks:
                if isinstance(callback, ProgressBar):
                    callback.bar.close()
            model.logger.close()
            model.env.close()  # subprocess workers (n_envs > 1) end with the run
            if stop is not None and stop.stopped_at_once and not isinstance(error, KeyboardInterrupt):
                # the second signal's KeyboardInterrupt can surface as another error: torch's zip writer, cut
                # mid-write, raises RuntimeError from its cleanup. It is still the user's stop-at-once.
                raise KeyboardInterrupt from error
            raise
    try:
        last = evaluator.evaluate() if run_state["last_eval"] < model.num_timesteps else None
    except RunPruned:
        # the final evaluation's report may prune the run too: it ends without a final model
        model.logger.close()
        model.env.close()
        raise
    final = folder.save_model(model)
    run_state["segments"][-1]["end"] = int(model.num_timesteps)
    folder.write_segments(run_state["segments"])
    if config.get("observation_noise"):
        folder.save_smoothing(config["observation_noise"], {"algorithm": type(model).__name__, "seed": seed})
    model.logger.close()
    model.env.close()
    if verbose:
        say(run_summary(run_dir, run_state, last, int(model.num_timesteps) - first_step, time.perf_counter() - began))
    return final


def run_summary(
    run_dir: Path, run_state: dict[str, Any], last: EvaluationResult | None, steps: int, seconds: float
) -> str:
    """The lines printed at the end of a run."""
    rows = run_state["evaluations"]
    lines = [f"done: {rows[-1]['step'] if rows else '?'} steps ({steps} in this process, {format_duration(seconds)})"]
    if last is not None:
        lines.append(f"last evaluation: {last.summary()}")
    elif rows:
        lines.append(
            f"last evaluation (step {rows[-1]['step']}): "
            + ", ".join(
                f"{key.split('/')[-1]} {value:.2f}"
                for key, value in rows[-1].items()
                if key.startswith("eval/") and key != "eval/success_rate"
            )
        )
    scored = [row for row in rows if row[SUCCESS_EVER] == row[SUCCESS_EVER]]  # NaN-free
    if scored:
        best = max(scored, key=lambda row: row[SUCCESS_EVER])
        lines.append(f"best success_ever {best[SUCCESS_EVER]:.2f} at step {best['step']}")
    elif rows:
        best = max(rows, key=lambda row: row[MEAN_RETURN])
        lines.append(f"best mean return {best[MEAN_RETURN]:.2f} at step {best['step']}")
    lines.append(f"model: {RunFolder(run_dir).model_file}; evaluate it with: python -m reengage.evaluate {run_dir}")
    return "\n".join(lines)
