"""``guardreasoner-vl`` subcommands of the evaluation harness: ``evaluate``, ``score``, ``moderate``."""
