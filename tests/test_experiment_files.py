"""The experiment files behind the docs' results pages train exactly the configurations the pages describe."""

from __future__ import annotations

from pathlib import Path

import pytest

from reengage.experiment.config import resolve_config
from reengage.experiment.spec import load_experiment

EXPERIMENTS = Path(__file__).resolve().parents[1] / "configs" / "experiments"


def test_docs_bit_flipping_trains_the_pages_grid_and_comparison() -> None:
    # docs/bit_flipping.md: n = 20, 30k steps, eval every 2000 on 50 episodes; grid on seed 0, comparison on seeds 1-3,
    # each run the family's config with eval_freq, eval_episodes, [reengage_tau], [her=null] set
    def bench_config(alpha: float, tau: float | None, her: bool) -> dict:
        assignments = ["eval_freq=2000", "eval_episodes=50", "trainer=sb3"]
        if tau is not None:
            assignments.append(f"algo_kwargs.reengage_tau={tau}")
        if not her:
            assignments.append("her=null")
        return resolve_config("reengage/BitFlipping20-v0", "dqn", alpha, 30000, assignments)

    expected = [(bench_config(a, t, True), 0) for a in (0.5, 1.0) for t in (0.0, 0.5, 1.0)]
    expected += [(bench_config(0.0, None, True), s) for s in (0, 1, 2, 3)]
    expected += [(bench_config(1.0, 1.0, True), s) for s in (1, 2, 3)]
    expected += [(bench_config(0.0, None, False), s) for s in (1, 2, 3)]
    runs = load_experiment(EXPERIMENTS / "docs_bit_flipping_n20.yaml").runs
    key = lambda pair: (repr(sorted(pair[0].items())), pair[1])  # noqa: E731
    assert sorted(((r.config, r.seed) for r in runs), key=key) == sorted(expected, key=key)


def test_reduced_files_have_the_seeds_and_steps_their_docs_state() -> None:
    def runs(name: str):
        return load_experiment(EXPERIMENTS / f"{name}.yaml").runs

    fig = runs("fig8_2_reduced")
    for env in ("reengage/ContinuousSeek5-v0", "reengage/ContinuousSeek10-v0"):
        for alpha in (0.0, 0.2):
            seeds = [r for r in fig if r.env_id == env and r.alpha == alpha]
            assert len(seeds) >= 10 and all(r.config["timesteps"] >= 40000 for r in seeds)
    for alpha in (0.1, 0.3):
        assert len([r for r in fig if r.env_id.endswith("10-v0") and r.alpha == alpha]) >= 3
    reduced_d20 = runs("fig8_2_d20_reduced")
    for name, budget, seeds in (("fig8_2_d20_reduced", 150_000, 3), ("fig8_2_d20_400k", 400_000, 5)):
        d20 = runs(name)
        assert {r.alpha for r in d20} == {0.0, 0.2} and all(r.config["timesteps"] == budget for r in d20)
        assert all(
            len([r for r in d20 if r.alpha == a and r.variant == v]) == seeds
            for v, a in {(r.variant, r.alpha) for r in d20}
        )
        matchings = [r.config["algo_kwargs"].get("reengage_matching") for r in d20 if r.alpha > 0]
        assert sorted(set(matchings)) == ["full", "one_sided"] and len(matchings) == 2 * seeds

        # the longer file trains the same configurations (and seeds 0-2 as the same runs), only for longer
        def configurations(runs_: list) -> set:
            return {
                (r.variant, r.seed, repr(sorted({**r.config, "timesteps": 0}.items()))) for r in runs_ if r.seed < 3
            }

        assert configurations(d20) == configurations(reduced_d20)
    sac = runs("sac_g6_reduced")
    assert {r.algo for r in sac} == {"sac"} and len(sac) == 6
    bits = runs("bit_flipping_g1_reduced")
    assert {r.env_id for r in bits} == {"reengage/BitFlipping40-v0"} and len(bits) == 6
    assert {r.config["timesteps"] for r in bits} == {1_600_000}  # the paper's budget
    assert {r.config["algo_kwargs"]["reengage_tau"] for r in bits if r.alpha > 0} == {1.0}


def test_learning_unchanged_pairs_each_run_with_its_sb3_twin() -> None:
    runs = load_experiment(EXPERIMENTS / "learning_unchanged.yaml").runs
    assert len(runs) == 20
    by_path = {
        trainer: {(r.alpha, r.seed): r.config for r in runs if r.config["trainer"] == trainer}
        for trainer in ("fast", "sb3")
    }
    assert set(by_path["fast"]) == set(by_path["sb3"]) == {(a, s) for a in (0.0, 0.2) for s in range(5)}
    for key, fast in by_path["fast"].items():
        # the same configuration but for the training path
        assert {**fast, "trainer": "sb3"} == by_path["sb3"][key]
        assert fast["batch_size"] == 256 and fast["timesteps"] == 10000 and fast["eval_episodes"] == 20


# docs/multi_goal.md's reduced setting, written out: Table G.4 except for the goals per set (the 50-goal ids), the
# networks, the batch and the steps. Settings not listed are the agent's defaults, which the loop also leaves alone.
MULTI_GOAL_REDUCED = {
    "learning_starts": 1000,
    "train_freq": 1,
    "gradient_steps": 1,
    "batch_size": 128,
    "learning_rate": 1e-3,
    "gamma": 0.95,
    "tau": 0.005,
    "buffer_size": 1_000_000,
    "eval_freq": 4000,
    "eval_episodes": 100,
    "eval_seed": 1_000_000,
    "her": None,
    "net_arch": [128],
    "timesteps": 80_000,
}
MULTI_GOAL_NOISE = {"reengage/DriveSeek50-v0": 0.05, "reengage/NoisySeek50-v0": 0.1}  # Table G.4
MULTI_GOAL_ENCODER = {"encoder_arch": [128, 128], "embed_dim": 20, "share_encoder": True}


def test_the_multi_goal_setting_file_is_table_g4_with_the_stated_reductions() -> None:
    experiment = load_experiment(EXPERIMENTS / "multi_goal_reduced_setting.yaml")
    assert experiment.metric == "eval/mean_return" and experiment.baseline == "DDPG"
    cells = sorted((r.env_id, r.algo, r.alpha, r.seed) for r in experiment.runs)
    assert cells == sorted(
        (env, "multi_ddpg", alpha, seed)
        for env in MULTI_GOAL_NOISE
        for alpha in (0.0, 5.0, 10.0, 20.0)
        for seed in (100, 101)  # apart from the comparison's seeds
    )
    for run in experiment.runs:
        config = run.config
        assert {key: config[key] for key in MULTI_GOAL_REDUCED} == MULTI_GOAL_REDUCED
        assert config["reengage_alpha"] == run.alpha
        assert config["action_noise_std"] == MULTI_GOAL_NOISE[run.env_id]
        assert config["policy_kwargs"] == MULTI_GOAL_ENCODER
        assert config["policy"] == "reengage.agents:DeepSetsTD3Policy"
        assert config["replay_buffer_class"] == "reengage.agents:GoalSetReplayBuffer"
        assert config["algo_kwargs"] == {} and config["env_kwargs"] == {}  # the fused step; n_max from the id


def _multi_goal_agent_by_hand(env_id: str, alpha: float, seed: int, buffer_size: int):
    """The reduced setting's agent built directly from its class (a plain gym env, the class's default policy)."""
    import gymnasium as gym
    import numpy as np
    from reengage.agents import MultiReenGAGEDDPG
    from stable_baselines3.common.noise import NormalActionNoise

    env = gym.make(env_id)
    dim = env.action_space.shape[0]
    return MultiReenGAGEDDPG(
        "DeepSetsPolicy",
        env,
        reengage_alpha=alpha,
        learning_rate=1e-3,
        buffer_size=buffer_size,
        learning_starts=1000,
        batch_size=128,
        tau=0.005,
        gamma=0.95,
        train_freq=1,
        gradient_steps=1,
        action_noise=NormalActionNoise(np.zeros(dim), MULTI_GOAL_NOISE[env_id] * np.ones(dim)),
        policy_kwargs={"encoder_arch": [128, 128], "net_arch": [128], "embed_dim": 20},
        seed=seed,
        device="cpu",
    )


def test_the_runner_trains_the_multi_goal_agent_built_by_hand_step_for_step(tmp_path: Path) -> None:
    # 1,020 steps: the 1,000 random ones and 20 gradient steps of Multi-ReenGAGE; a smaller buffer on both sides
    # (its size never changes what is sampled before it is full)
    import torch

    from reengage.experiment.run_folder import RunFolder
    from reengage.experiment.runner import train_run

    run = next(
        r
        for r in load_experiment(EXPERIMENTS / "multi_goal_reduced_setting.yaml").runs
        if r.env_id == "reengage/DriveSeek50-v0" and r.alpha == 10.0 and r.seed == 101
    )
    config = {**run.config, "timesteps": 1020, "buffer_size": 2000, "eval_freq": 500, "eval_episodes": 2}
    train_run(config, run.seed, tmp_path / "run", progress=False, verbose=False)
    _, trained = RunFolder(tmp_path / "run").load_model()
    by_hand = _multi_goal_agent_by_hand(run.env_id, 10.0, run.seed, buffer_size=2000)
    # the loop trains in chunks of eval_freq steps; SB3 continues the episode in flight between them
    by_hand.learn(500, reset_num_timesteps=False)
    by_hand.learn(500, reset_num_timesteps=False)
    by_hand.learn(20, reset_num_timesteps=False)
    assert trained.num_timesteps == by_hand.num_timesteps == 1020
    ours, theirs = trained.policy.state_dict(), by_hand.policy.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[key], theirs[key]) for key in ours)
    untrained = _multi_goal_agent_by_hand(run.env_id, 10.0, run.seed, buffer_size=2000).policy.state_dict()
    assert not all(torch.equal(untrained[key], theirs[key]) for key in theirs)  # the gradient steps moved them


def test_robotics_fetchreach_trains_the_familys_fetchreach_profile() -> None:
    # docs/robotics.md's FetchReach table: resolve_config("FetchReach-v4", "ddpg", 0.0, None) for seeds 0 and 1
    runs = load_experiment(EXPERIMENTS / "robotics_fetchreach.yaml").runs
    expected = resolve_config("FetchReach-v4", "ddpg", 0.0, None)
    assert sorted(r.seed for r in runs) == [0, 1]
    assert all(r.config == expected for r in runs) and expected["timesteps"] == 10000


def test_d15_tuned_settings_shares_the_grids_ddpg_runs_and_pins_its_variants() -> None:
    def runs(name: str):
        return load_experiment(EXPERIMENTS / f"{name}.yaml").runs

    tuned = runs("d15_tuned_settings")
    grid = [r for r in runs("d15_diagnosis_grid") if r.alpha == 0 and r.config["env_kwargs"] == {"d": 15, "box": 3.0}]
    # DDPG+HER: the very configurations of the diagnosis grid's cell (d = 15, box 3), so the same run identities
    assert sorted(r.run_id.rsplit("_", 1)[1] for r in tuned if r.alpha == 0) == sorted(
        r.run_id.rsplit("_", 1)[1] for r in grid
    )
    reengage = [r for r in tuned if r.alpha > 0]
    assert len(reengage) == 9 and all(r.config["env_kwargs"] == {"d": 15, "box": 3.0} for r in reengage)
    settings = sorted(
        (r.config["algo_kwargs"]["reengage_matching"], r.config["batch_size"], r.config["learning_rate"])
        for r in reengage
    )
    assert settings == [("full", 512, 1.0e-3)] * 3 + [("one_sided", 512, 5.0e-4)] * 3 + [("one_sided", 512, 1.0e-3)] * 3


@pytest.mark.parametrize("name", ["d15_diagnosis_grid", "d15_diagnosis_grid_d20"])
def test_diagnosis_grid_after_column_is_what_train_py_trains_by_default(name: str) -> None:
    # docs/diagnosis.md claims the grid's DDPG+HER and "after" columns are the generic id's defaults: the runs must be
    # exactly `train.py --env reengage/ContinuousSeek-v0 --algo ddpg --alpha A --set env_kwargs=...` with nothing else
    experiment = load_experiment(EXPERIMENTS / f"{name}.yaml")
    compared = [r for r in experiment.runs if "(before)" not in r.variant]
    assert {r.alpha for r in compared} == {0.0, 0.2} and len(compared) == 2 * 3 * len(experiment.runs) // 9
    for run in compared:
        kwargs = run.config["env_kwargs"]
        default = resolve_config(
            "reengage/ContinuousSeek-v0",
            "ddpg",
            run.alpha,
            run.config["timesteps"],
            [f"env_kwargs={{d: {kwargs['d']}, box: {kwargs['box']}}}"],
        )
        assert run.config == default, run.run_id
    assert {(r.config["batch_size"], r.config["learning_rate"]) for r in compared} == {(256, 5.0e-4)}
    assert {r.config["algo_kwargs"].get("reengage_matching") for r in compared if r.alpha > 0} == {"one_sided"}


@pytest.mark.parametrize("algo", ["sac", "td3"])
@pytest.mark.parametrize("suffix, cells, budget", [("", 6, 20000), ("_d20", 2, 40000)])
def test_sac_td3_matching_grids_train_the_generic_ids_defaults(algo: str, suffix: str, cells: int, budget: int) -> None:
    # each run is `train.py --env reengage/ContinuousSeek-v0 --algo A --alpha a --set env_kwargs=...` with only the
    # matching pinned, at the DDPG grid's budget for its d; the report compares with the same algorithm's baseline
    experiment = load_experiment(EXPERIMENTS / f"{algo}_matching_grid{suffix}.yaml")
    runs = experiment.runs
    assert experiment.baseline == f"{algo.upper()}+HER"
    assert len(runs) == 3 * cells * 3 and {r.seed for r in runs} == {0, 1, 2}
    matchings = {(r.algo, r.alpha, r.config["algo_kwargs"].get("reengage_matching")) for r in runs}
    assert matchings == {
        (algo, alpha, matching) for alpha, matching in ((0.0, None), (0.2, "full"), (0.2, "one_sided"))
    }
    for run in runs:
        kwargs = run.config["env_kwargs"]
        assignments = [f"env_kwargs={{d: {kwargs['d']}, box: {kwargs['box']}}}"]
        if run.alpha > 0:
            assignments.append(f"algo_kwargs.reengage_matching={run.config['algo_kwargs']['reengage_matching']}")
        assert run.config == resolve_config("reengage/ContinuousSeek-v0", run.algo, run.alpha, budget, assignments)


SCHEDULE_50_EPOCHS = {
    "trainer": "fast",
    "timesteps": 250_000,
    "n_envs": 2,
    "train_freq": 50,
    "gradient_steps": 40,
    "batch_size": 256,
    "eval_freq": 5000,
    "eval_episodes": 10,
    "learning_rate": 1e-3,
    "gamma": 0.98,
    "net_arch": [256, 256, 256],
    "action_l2": 1.0,
    "random_action_prob": 0.3,
    "target_value_clip": True,
    "action_noise_std": 0.2,
}


@pytest.mark.parametrize(
    "name, env_id, runs",
    [
        (
            "robotics_handreach_50epochs",
            "HandReach-v3",
            {("DDPG+HER", 0.0): [0, 1, 2, 3, 4], ("ReenGAGE", 1e-3): [0, 1, 2, 3, 4]},
        ),
        (
            "robotics_block_50epochs",
            "HandManipulateBlock-v1",
            {("DDPG+HER", 0.0): [0, 1], ("ReenGAGE", 1e-3): [0, 1], ("ReenGAGE G.4 weights", 1e-3): [0, 1]},
        ),
    ],
)
def test_50_epoch_robotics_files_run_one_baselines_workers_schedule_on_the_fast_trainer(name, env_id, runs) -> None:
    """50 epochs of 50 cycles x 2 episodes x 50 steps, 40 gradient steps per cycle, evaluated every epoch."""
    experiment = load_experiment(EXPERIMENTS / f"{name}.yaml")
    found: dict[tuple[str, float], list[int]] = {}
    for run in experiment.runs:
        assert run.env_id == env_id and run.algo == "ddpg"
        assert {key: run.config[key] for key in SCHEDULE_50_EPOCHS} == SCHEDULE_50_EPOCHS
        assert run.config["obs_normalization"] is not None and run.config["her"]["n_sampled_goal"] == 4
        found.setdefault((run.variant, run.alpha), []).append(run.seed)
        weights = run.config["algo_kwargs"].get("reengage_dim_weights", "none")
        assert weights == ("normalised" if "G.4" in run.variant else "none")
    assert found == runs and experiment.metric == "eval/success_final"
    # the 5,000-step epoch: 50 cycles of 100 transitions, 40 gradient steps each
    config = experiment.runs[0].config
    cycle = config["train_freq"] * config["n_envs"]
    assert config["eval_freq"] == 50 * cycle == 5000 and config["timesteps"] // cycle * 40 == 100_000


def test_50_epoch_handreach_sweep_crosses_alpha_with_the_matching_form_on_its_own_seeds() -> None:
    experiment = load_experiment(EXPERIMENTS / "robotics_handreach_50epochs_sweep.yaml")
    points = {
        (run.alpha, run.config["algo_kwargs"].get("reengage_matching", "full"))
        for run in experiment.runs
        if run.variant == "ReenGAGE"
    }
    assert points == {(a, m) for a in (1e-4, 1e-3, 1e-2) for m in ("full", "one_sided")}
    assert len(experiment.runs) == 3 + 6 * 3 and {run.seed for run in experiment.runs} == {100, 101, 102}
    for run in experiment.runs:
        assert {key: run.config[key] for key in SCHEDULE_50_EPOCHS} == SCHEDULE_50_EPOCHS
    baseline = [run for run in experiment.runs if run.variant == "DDPG+HER"]
    assert len(baseline) == 3 and all(run.alpha == 0 for run in baseline)


def test_full_scale_handreach_file_keeps_the_baselines_cycle_with_19_environments() -> None:
    """4.75M steps = 50 epochs x 19 workers x 5,000; 2 episodes per environment then 40 gradient steps."""
    experiment = load_experiment(EXPERIMENTS / "robotics_handreach_full.yaml")
    assert len(experiment.runs) == 10
    for run in experiment.runs:
        config = run.config
        assert config["trainer"] == "fast" and config["n_envs"] == 19 and config["batch_size"] == 19 * 256
        cycle = config["train_freq"] * config["n_envs"]
        assert cycle == 19 * 2 * 50 and config["gradient_steps"] == 40
        assert config["timesteps"] == 50 * 19 * 5000 and config["eval_freq"] == 50 * cycle
        assert config["timesteps"] // cycle * 40 == 100_000
