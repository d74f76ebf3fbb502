"""Bridges to other tools: :mod:`icpi.integrations.optuna_sampler` (an Optuna sampler)."""
