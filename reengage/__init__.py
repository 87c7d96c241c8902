"""reengage: goal-gradient critic losses for goal-conditioned reinforcement learning.

Imports a user writes::

    from reengage import losses                     # pure loss functions (Eq. 8.8, 8.9, 8.19, G.10)
    import reengage.envs                            # registers the reengage/... gymnasium ids
    from reengage.agents import ReenGAGEDDPG, ReenGAGETD3, ReenGAGESAC

Layers (imports go down only; ``tests/test_import_graph.py`` checks it):

* shared modules here: :mod:`.losses`, :mod:`.algorithms` (the one algorithm registry),
  :mod:`.observation_noise` (smoothing settings and their sidecar), :mod:`.noise_wrapper` (training under that
  noise), :mod:`.theory`;
* :mod:`.experiment` (training runs: the configuration table, run folders, the training loop, the experiment
  runner) and :mod:`.robustness` (certification), side by side: neither imports the other;
* the commands that join them: :mod:`.evaluate`, :mod:`.certify`, :mod:`.theory_experiment`;
* :mod:`.studies`: research tools behind docs/diagnosis.md, which nothing else imports.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("reengage")  # one source of truth: pyproject.toml, through the installed metadata
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
