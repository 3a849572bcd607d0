"""Validation F1 per benchmark from the reward's confusion indicators (pure; no verl import).

The reward (:func:`rewards.guardreasoner_vl.compute_score`) returns per sample ``request_tp/fp/fn/tn``
and ``response_tp/fp/fn/tn`` (harmful = positive; all ``response_*`` are 0 for a sample without a
response) and ``has_response``. verl's validation only averages each key per ``data_source``; F1 is
not an average of per-sample values, so it is computed here from the summed counts::

    F1 = 2 tp / (2 tp + fp + fn)          (0.0 when the denominator is 0, as sklearn's zero_division=0)

Metrics (values in [0, 1], like verl's ``acc``; the paper's tables show them x100):

- ``val-core/<data_source>/request_f1`` for every data source;
- ``val-core/<data_source>/response_f1`` for every data source with at least one response
  (a prompt-only benchmark has no response task).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Mapping, Sequence

from rewards.f1 import f1_from_counts

__all__ = ["COUNT_KEYS", "TASKS", "f1_from_counts", "safety_f1_metrics"]

TASKS = ("request", "response")
COUNT_KEYS = tuple(f"{task}_{c}" for task in TASKS for c in ("tp", "fp", "fn")) + ("has_response",)


def _as_count(value: Any, key: str, index: int, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(
            f"validation sample {index} (data_source {source!r}): reward key {key!r} must be a non-negative "
            f"number, got {value!r} (the reward must return every key for every sample)"
        )
    return float(value)


def safety_f1_metrics(data_sources: Sequence[str], infos: Mapping[str, Sequence[Any]]) -> dict[str, float]:
    """F1 per ``data_source`` and task from per-sample reward infos (verl's ``reward_extra_infos_dict``).

    Returns ``{}`` when the reward does not emit the confusion keys at all (another reward is
    configured); a sample missing a value when the others have it is an error naming it.
    """
    if not all(key in infos for key in COUNT_KEYS):
        return {}
    for key in COUNT_KEYS:
        if len(infos[key]) != len(data_sources):
            raise ValueError(f"reward key {key!r} has {len(infos[key])} values for {len(data_sources)} samples")

    sums: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(COUNT_KEYS, 0.0))
    for index, source in enumerate(data_sources):
        source = str(source)
        for key in COUNT_KEYS:
            sums[source][key] += _as_count(infos[key][index], key, index, source)

    metrics: dict[str, float] = {}
    for source, counts in sums.items():
        for task in TASKS:
            if task == "response" and counts["has_response"] == 0:
                continue
            metrics[f"val-core/{source}/{task}_f1"] = f1_from_counts(
                counts[f"{task}_tp"], counts[f"{task}_fp"], counts[f"{task}_fn"]
            )
    return metrics
