"""Training runs: the configuration table (:mod:`.config_keys`) and its resolution (:mod:`.config`), agents and
environments from a configuration (:mod:`.build`), the run folder (:mod:`.run_folder`) and what may be done with
one (:mod:`.resume`), the training loop (:mod:`.runner`), checkpoints, evaluation, and the experiment runner
(``python -m reengage.experiment``: :mod:`.spec`, :mod:`.grid`, :mod:`.results_folder`, :mod:`.report`, ...)."""
