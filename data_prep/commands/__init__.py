"""``guardreasoner-vl`` data subcommands: thin wrappers (parse, call the library, print a summary)."""
