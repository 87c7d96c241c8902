"""ReenGAGE for CrossQ (sb3-contrib): what the goal gradient would be, and why the agent refuses to train.

CrossQ has no target network. Its critic runs batch renormalisation over the joint batch of ``(s, a)`` and
``(s', a')`` in one train-mode forward, and the TD target is that forward's value at ``(s', a')``
(``min_j Q_j(s', a') - ent_coef * log pi(a' | s')``, detached; ``a'`` from the actor with its own
normalisation in eval mode, i.e. on its running statistics).

**The goal gradient.** In train mode each BatchRenorm layer normalises with statistics of the whole joint
batch, so ``Q(s_i, a_i, g_i)`` depends on every other row: the goal gradient of row i's value is not a
function of row i alone (the derivative of the batch mean and variance in ``g_i`` couples the rows, and it
shrinks as ``1/B``). The well-defined per-sample choice, and the one this toolkit would use, is the
gradient with the normalisation statistics **held fixed** (treated as constants): each layer applies
``x -> scale * (x - m) / sqrt(v + eps) + bias`` with ``(m, v)`` the statistics that very joint forward
normalised with (the batch statistics during warm-up, the renormalised ones after it), detached. Both sides
of the term are taken in that frozen map, for each critic head ``j``::

    grad_g Q_j(s, a, g)|_(m, v)   ~   gamma (1 - d) grad_g [ min_j Q_j(s', a'(s', g), g)|_(m, v) - ent_coef log pi(a' | s', g) ]

with ``a'(s', g)`` reparameterised through the actor on its running statistics (as in
:mod:`reengage.agents.sac`); the critic's parameters get the term's gradient through the frozen map (the
affine ``scale`` and ``bias`` included), never through the statistics.

**Why it is refused.** sb3-contrib 2.9's CrossQ registers only ``MlpPolicy`` (its ``MultiInputPolicy`` is a
to-do) and its ``train()`` concatenates observations with ``torch.cat``, which a dict observation is not.
Goal-conditioned environments give dict observations (``observation``, ``achieved_goal``,
``desired_goal``), which HER needs and from which the term reads the goal. Training it here would mean
re-writing CrossQ's ``train()`` for dict observations, and "ReenGAGE at alpha 0 is stock CrossQ" could no
longer be checked against stock CrossQ. ``train.py --algo crossq`` exits 2 with that reason
(:func:`reengage.algorithms.trainable_algo_spec`), and the class below raises ValueError.
"""

from __future__ import annotations

from typing import Any

from sb3_contrib import CrossQ

REFUSAL = (
    "ReenGAGE-CrossQ is not available: sb3-contrib's CrossQ takes no dict (goal-conditioned) observations "
    "(only MlpPolicy; its train() joins observations with torch.cat), so neither HER nor the goal gradient "
    "can be formed; see reengage.agents.crossq and docs/agents.md for the definition it would use"
)


class ReenGAGECrossQ(CrossQ):
    """Refuses to be built: see the module docstring for the term's definition and the reason."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise ValueError(REFUSAL)
