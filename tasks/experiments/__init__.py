"""Experiments: Optuna hyper-parameter search, LOCO ablation, MLflow model registry."""
