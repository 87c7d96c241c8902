"""Research tools behind docs/diagnosis.md: one-off investigations of a trained run, kept runnable.

* :mod:`.branch_run`: continue a checkpointed ContinuousSeek run with another goal-gradient setting;
* :mod:`.critic_probes`: offline probes of a checkpointed critic (term share, the success peak);
* :mod:`.plot_diagnostics`: draw the ``reengage_diag/`` scalars of several runs side by side.

They sit above :mod:`reengage.experiment` (they read its checkpoints and run folders) and nothing imports them.
What users run to train, compare and report is in :mod:`reengage.experiment`.
"""
