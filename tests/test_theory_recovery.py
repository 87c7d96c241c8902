"""Training within the hypothesis class: who recovers U from how many transitions (Prop. 8.1, 8.2)."""

from __future__ import annotations

import csv

import pytest
import torch
from reengage.envs import TheoryDenseEnv, TheorySparseEnv

from reengage.theory import fit_rotation, rotation_error, sample_transitions
from reengage.theory_experiment import bisect_smallest, counts, held_out_actions, main

D = 4  # SO(4): 6 parameters; gradient loss needs d-1 = 3 transitions, TD loss d(d-1)/2 = 6 or more
TOL = 1e-4


def _recover(kind: str, loss: str, n: int, seed: int = 0):
    env = (TheoryDenseEnv if kind == "dense" else TheorySparseEnv)(d=D, rotation_seed=seed)
    pool = sample_transitions(env, 40, seed=seed)
    fit = fit_rotation(kind, pool.subset(slice(0, n)), loss, restarts=4, seed=seed)
    return fit, rotation_error(fit.rotation, torch.as_tensor(env.U), held_out_actions(D, seed))


@pytest.mark.parametrize(("kind", "enough"), [("dense", D - 1), ("sparse", 2 * (D - 1) - 1)])
def test_reengage_loss_recovers_u_from_order_d_transitions(kind, enough):
    fit, error = _recover(kind, "reengage", enough)
    assert fit.converged and error < TOL
    # one fewer: still an exact fit, but of a wrong rotation -- the information is missing
    fit, error = _recover(kind, "reengage", enough - 1)
    assert fit.converged and error > 1e-2


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_td_loss_cannot_recover_u_from_the_same_transitions(kind):
    enough_for_gradient = D - 1 if kind == "dense" else 2 * (D - 1) - 1
    fit, error = _recover(kind, "td", enough_for_gradient)
    assert fit.converged and error > 1e-2  # exact fit, wrong U: the TD loss lacks the information


@pytest.mark.parametrize(("kind", "n"), [("dense", 16), ("sparse", 32)])
def test_td_loss_recovers_u_with_order_d_squared_transitions(kind, n):
    fit, error = _recover(kind, "td", n)
    assert fit.converged and error < TOL


def test_bisect_smallest_finds_the_threshold():
    for threshold in (1, 2, 7, 8, 33):
        seen = []
        n, probes = bisect_smallest(lambda k: seen.append(k) or k >= threshold, cap=100)  # noqa: B023 (called within this iteration)
        assert n == threshold and probes == len(seen)
    assert bisect_smallest(lambda k: False, cap=10)[0] == -1


def test_counts_follow_app_g1():
    assert [counts("8.1", "reengage", d) for d in (2, 8, 32)] == [1, 7, 31]
    assert [counts("8.1", "td", d) for d in (2, 8, 32)] == [1, 28, 496]
    assert [counts("8.2", "reengage", d) for d in (2, 8)] == [1, 13]
    assert counts("8.2", "td", 8) == 55


@pytest.mark.slow
def test_experiment_end_to_end_small(tmp_path):
    main(["--out", str(tmp_path), "--dims", "2", "4", "8", "--seeds", "1", "--train-dims", "2", "4", "8"])
    rows = list(csv.DictReader(open(tmp_path / "runs.csv")))
    assert (tmp_path / "sample_complexity.png").stat().st_size > 0
    for row in rows:
        n_train, n_local = int(row["n_train"]), int(row["n_local"])
        expected = counts(row["proposition"], row["loss"], int(row["d"]))
        assert n_local == expected
        if row["loss"] == "reengage":
            assert n_train == expected
        else:
            assert n_train >= expected
