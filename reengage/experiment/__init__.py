"""Experiment tools: configs, agent construction, evaluation, checkpoints, TensorBoard reading."""
