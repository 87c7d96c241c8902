"""PNG plots of a certification report (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_episode_curves(episode: dict[str, Any], path: str | Path, title: str = "") -> Path:
    """Certified success probability and expected return against the total budget B."""
    b = np.asarray(episode["budgets"], dtype=float)
    has_ret = episode.get("certified_return") is not None
    fig, axes = plt.subplots(1, 2 if has_ret else 1, figsize=(9 if has_ret else 4.5, 3.4), squeeze=False)
    ax = axes[0, 0]
    ax.plot(b, episode["certified_success"], marker="o")
    ax.axhline(episode["success_rate"], ls="--", c="gray", label="clean smoothed success rate")
    ax.set_xlabel("total l2 budget B over the episode")
    ax.set_ylabel("certified success probability")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8)
    if has_ret:
        ax = axes[0, 1]
        ax.plot(b, episode["certified_return"], marker="o", c="C1")
        ax.axhline(episode["mean_return"], ls="--", c="gray", label="clean smoothed mean return")
        ax.set_xlabel("total l2 budget B over the episode")
        ax.set_ylabel("certified expected return")
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_radius_histogram(radii: list[Any], path: str | Path, xlabel: str, title: str = "") -> Path:
    """Histogram of per-state certified radii; abstentions counted at the left as radius -."""
    vals = [r for r in radii if r is not None]
    finite = [float(r) for r in vals if r != "inf" and np.isfinite(float(r))]
    n_inf = len(vals) - len(finite)
    n_abs = len(radii) - len(vals)
    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    if finite and all(float(v).is_integer() for v in finite):  # l0 radii: one bar per integer
        ax.hist(finite, bins=np.arange(-0.5, max(finite) + 1.5), color="C0", edgecolor="k", rwidth=0.8)
    elif finite:
        ax.hist(finite, bins=min(30, max(5, len(set(finite)))), color="C0", edgecolor="k")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("states")
    ax.set_title(f"{title}\nabstained: {n_abs}, infinite: {n_inf}, of {len(radii)}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
