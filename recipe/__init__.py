"""Namespace for verl recipes shipped by this project (see ``recipe/guardreasoner_vl``)."""
