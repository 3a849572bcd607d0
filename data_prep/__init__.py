"""Pure data (the layer above ``rewards``, below ``inference``): the guard's prompt, the record type,
readers, verl parquet and evaluation writers, images, safety-aware concatenation, the RL split, the
benchmark table, and reasoning-trace synthesis through an OpenAI-compatible API.

Nothing here loads a model or imports torch; the commands that drive these functions live in ``cli``.
"""
