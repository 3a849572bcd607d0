"""Reasoning-trace synthesis through any OpenAI-compatible chat-completions API.

``guardreasoner-vl synthesize`` (:mod:`.command`) turns labelled records into records whose
``reasoning`` is a validated guard output (``<think>…</think><result>…</result>``), ready for the
SFT writer. Modules, one job each:

- :mod:`.template`: the replaceable prompt file and its placeholders;
- :mod:`.validate`: accept a trace only if the guard's parser reads the ground-truth labels in it;
- :mod:`.retry`: which errors are retried, backoff with jitter, ``Retry-After``, requests per minute;
- :mod:`.journal`: append-only JSONL output and rejects, torn-line repair, resume state;
- :mod:`.pricing`: token counts to an estimated cost;
- :mod:`.engine`: the async run that ties them together;
- :mod:`.fake_server`: a scriptable local chat-completions server (tests, benchmark, dry runs).
"""

from data_prep.synthesize.engine import SynthesisSettings, SynthesisSummary, synthesize, synthesize_async
from data_prep.synthesize.retry import FatalAPIError, RetryPolicy
from data_prep.synthesize.template import PromptTemplate

__all__ = [
    "FatalAPIError",
    "PromptTemplate",
    "RetryPolicy",
    "SynthesisSettings",
    "SynthesisSummary",
    "synthesize",
    "synthesize_async",
]
