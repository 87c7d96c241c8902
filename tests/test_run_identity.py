"""A run's folder name ends with a hash of its resolved configuration, so any change to how a configuration
is resolved (a default, a key's coercion, the order of the layers) would silently start every experiment
over in new folders. These pins hold the run folders of representative experiment files fixed: a plain
two-variant file, the Fig. 8.2 reproduction, grids over env kwargs and alpha, DQN, Multi-ReenGAGE, SAC and
the robotics files (their configurations resolve without gymnasium-robotics installed).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from reengage.experiment.spec import load_experiment

EXPERIMENTS = Path(__file__).resolve().parents[1] / "configs" / "experiments"

# file -> (number of runs, the first run's folder, sha256 prefix of every "run_id timesteps=N" line)
PINNED = {
    "smoke": (4, "ContinuousSeek5-v0/DDPG+HER/s0_596c1dcab8", "1bd7ffe3601825af"),
    "fig8_2_reduced": (46, "ContinuousSeek5-v0/DDPG+HER/s0_4d755bb092", "66a50617ec853c97"),
    "d15_diagnosis_grid": (54, "ContinuousSeek-v0/DDPG+HER/env_kwargs=-d-5,-box-3.0/s0_63d6846811", "81e80b0530b44ef7"),
    "bit_flipping_g1_reduced": (6, "BitFlipping40-v0/DQN+HER/s0_21fc849939", "91279de8338fa7fc"),
    "multi_goal_reduced_setting": (16, "DriveSeek50-v0/DDPG/s100_c9babdb5a6", "5fd71ed0d38a7f03"),
    "robotics_fetchreach": (2, "FetchReach-v4/DDPG+HER/s0_ded6625268", "f524bc683b3787e7"),
    "robotics_handreach_sweep": (5, "HandReach-v3/DDPG+HER/s0_9450081870", "8dbc0c10a256bd76"),
    "sac_g6_reduced": (6, "ContinuousSeek5-v0/SAC+HER/s0_eaa46deb55", "a40626f68e431e71"),
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_run_folders_of_experiment_files_stay_the_same(name: str) -> None:
    runs = load_experiment(EXPERIMENTS / f"{name}.yaml").runs
    listing = "\n".join(f"{run.run_id} timesteps={run.config['timesteps']}" for run in runs)
    count, first, digest = PINNED[name]
    assert (len(runs), runs[0].run_id) == (count, first)
    assert hashlib.sha256(listing.encode()).hexdigest()[:16] == digest
