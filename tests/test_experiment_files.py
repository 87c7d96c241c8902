"""The experiment files that stand for existing docs results train exactly what those results trained."""

from __future__ import annotations

from pathlib import Path

from reengage.experiment.config import resolve_config
from reengage.experiment.spec import load_experiment

EXPERIMENTS = Path(__file__).resolve().parents[1] / "configs" / "experiments"


def test_docs_continuous_seek_matches_the_compare_command() -> None:
    # docs/continuous_seek.md: compare.py --alphas 0 0.2 --seeds 0 1 2 --timesteps 20000 --set batch_size=256,
    # which resolved resolve_config(env, "ddpg", alpha, 20000, ["batch_size=256", "checkpoint_every=10000", "trainer=sb3"])
    experiment = load_experiment(EXPERIMENTS / "docs_continuous_seek.yaml")
    # (those runs used Eq. 8.9, the only matching then; the file pins it against the family's one-sided default)
    paper = {0.0: [], 0.2: ["algo_kwargs.reengage_matching=full"]}
    expected = {
        (env, alpha, seed): resolve_config(
            env, "ddpg", alpha, 20000, ["batch_size=256", "checkpoint_every=10000", "trainer=sb3", *paper[alpha]])
        for env in ("reengage/ContinuousSeek5-v0", "reengage/ContinuousSeek10-v0") for alpha in (0.0, 0.2)
        for seed in (0, 1, 2)
    }
    assert {(r.env_id, r.alpha, r.seed): r.config for r in experiment.runs} == expected


def test_docs_bit_flipping_matches_the_bench_script() -> None:
    # bench/bit_flipping.py --out docs: n = 20, 30k steps, eval every 2000 on 50 episodes; grid on seed 0,
    # comparison on seeds 1-3; its assignments were eval_freq, eval_episodes, [reengage_tau], [her=null]
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


def test_reduced_files_meet_the_issue_budgets() -> None:
    def runs(name: str):
        return load_experiment(EXPERIMENTS / f"{name}.yaml").runs

    fig = runs("fig8_2_reduced")
    for env in ("reengage/ContinuousSeek5-v0", "reengage/ContinuousSeek10-v0"):
        for alpha in (0.0, 0.2):
            seeds = [r for r in fig if r.env_id == env and r.alpha == alpha]
            assert len(seeds) >= 5 and all(r.config["timesteps"] >= 40000 for r in seeds)
    for alpha in (0.1, 0.3):
        assert len([r for r in fig if r.env_id.endswith("10-v0") and r.alpha == alpha]) >= 3
    d20 = runs("fig8_2_d20_reduced")
    assert {r.alpha for r in d20} == {0.0, 0.2} and all(r.config["timesteps"] >= 150000 for r in d20)
    assert all(len([r for r in d20 if r.alpha == a]) >= 3 for a in (0.0, 0.2))
    matchings = [r.config["algo_kwargs"].get("reengage_matching") for r in d20 if r.alpha > 0]
    assert sorted(set(matchings)) == ["full", "one_sided"] and len(matchings) == 6
    sac = runs("sac_g6_reduced")
    assert {r.algo for r in sac} == {"sac"} and len(sac) == 6
    bits = runs("bit_flipping_g1_reduced")
    assert {r.env_id for r in bits} == {"reengage/BitFlipping40-v0"} and len(bits) == 6
    assert {r.config["algo_kwargs"]["reengage_tau"] for r in bits if r.alpha > 0} == {1.0}


def test_learning_unchanged_pairs_each_run_with_its_sb3_twin() -> None:
    runs = load_experiment(EXPERIMENTS / "learning_unchanged.yaml").runs
    assert len(runs) == 20
    by_path = {trainer: {(r.alpha, r.seed): r.config for r in runs if r.config["trainer"] == trainer}
               for trainer in ("fast", "sb3")}
    assert set(by_path["fast"]) == set(by_path["sb3"]) == {(a, s) for a in (0.0, 0.2) for s in range(5)}
    for key, fast in by_path["fast"].items():
        # the same configuration but for the training path
        assert {**fast, "trainer": "sb3"} == by_path["sb3"][key]
        assert fast["batch_size"] == 256 and fast["timesteps"] == 10000 and fast["eval_episodes"] == 20


def test_docs_multi_goal_trains_multi_reengage_against_ddpg_with_return_as_metric() -> None:
    experiment = load_experiment(EXPERIMENTS / "docs_multi_goal.yaml")
    assert len(experiment.runs) == 12 and experiment.metric == "eval/mean_return"
    assert {r.env_id for r in experiment.runs} == {"reengage/DriveSeek-v0", "reengage/NoisySeek-v0"}
    assert {(r.algo, r.alpha) for r in experiment.runs} == {("multi_ddpg", 0.0), ("multi_ddpg", 10.0)}
    noise = {r.env_id: r.config["action_noise_std"] for r in experiment.runs}
    assert noise == {"reengage/DriveSeek-v0": 0.05, "reengage/NoisySeek-v0": 0.1}  # Table G.4
