"""Sequence cases (autoregressive generation) and the estimators of LLM policy-gradient training."""
