"""Reward functions for verl, importable without verl or torch.

- :mod:`rewards.grammar`: the guard's output grammar (labels, ``parse_verdict``).
- :mod:`rewards.guardreasoner_vl`: the GuardReasoner-VL reward (``compute_score``).
"""
