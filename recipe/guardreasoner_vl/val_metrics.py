"""Validation F1 per benchmark from the reward's confusion indicators (pure; no verl import).

The reward (:func:`rewards.guardreasoner_vl.compute_score`) returns per sample ``request_tp/fp/fn/tn``
and ``response_tp/fp/fn/tn`` (harmful = positive; all ``response_*`` are 0 for a sample without a
response) and ``has_response``. verl's validation only averages each key per ``data_source``; F1 is
not an average of per-sample values, so it is computed here from the summed counts::

    F1 = 2 tp / (2 tp + fp + fn)          (0.0 when the denominator is 0, as sklearn's zero_division=0)

Metrics (values in [0, 1], like verl's ``acc``; the paper's tables show them x100):

- ``val-core/<data_source>/request_f1`` for every data source;
- ``val-core/<data_source>/response_f1`` for every data source with at least one response
  (a prompt-only benchmark has no response task);
- ``val-aux/<data_source>/f1_unparsed``: samples left out of the F1 because their reward values
  were missing (see below), only for a data source that has such samples.

Missing values. verl builds ``reward_extra_infos_dict`` key by key and fills ``None`` for a sample
whose reward output lacks a key (a reward that failed on that sample, or another reward for some
data source). Such a sample cannot be scored: its gold label is encoded in the very counts that are
missing, so it can be neither a false positive nor a false negative. It is counted as *unparsed*
(``f1_unparsed``), left out of the F1 sums, and a warning names the data source, so a validation step
never stops on it and the F1 never silently covers fewer samples than the benchmark has. A value that
is present but not a count (negative, a string) is still an error: that is a bug in the reward.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from typing import Any, Mapping, Sequence

from rewards.f1 import f1_from_counts

__all__ = ["COUNT_KEYS", "TASKS", "UNPARSED_METRIC", "f1_from_counts", "safety_f1_metrics"]

logger = logging.getLogger(__name__)

TASKS = ("request", "response")
COUNT_KEYS = tuple(f"{task}_{c}" for task in TASKS for c in ("tp", "fp", "fn")) + ("has_response",)
#: Name (after ``val-aux/<data_source>/``) of the count of samples left out for missing values.
UNPARSED_METRIC = "f1_unparsed"


def _is_missing(value: Any) -> bool:
    """verl's fill value (``None``), or a NaN a reward may have produced for an unscorable sample."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _as_count(value: Any, key: str, index: int, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(
            f"validation sample {index} (data_source {source!r}): reward key {key!r} must be a non-negative "
            f"number, got {value!r}"
        )
    return float(value)


def safety_f1_metrics(data_sources: Sequence[str], infos: Mapping[str, Sequence[Any]]) -> dict[str, float]:
    """F1 per ``data_source`` and task from per-sample reward infos (verl's ``reward_extra_infos_dict``).

    Returns ``{}`` when the reward does not emit the confusion keys at all (another reward is
    configured). A sample with a missing value (``None`` or NaN) is counted as unparsed and left
    out, with a warning naming its data source (a data source none of whose samples could be scored
    gets only the unparsed count, no F1); a value that is present but not a count raises.
    """
    if not all(key in infos for key in COUNT_KEYS):
        return {}
    for key in COUNT_KEYS:
        if len(infos[key]) != len(data_sources):
            raise ValueError(f"reward key {key!r} has {len(infos[key])} values for {len(data_sources)} samples")

    sums: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(COUNT_KEYS, 0.0))
    unparsed: dict[str, list[int]] = defaultdict(list)
    missing_keys: dict[str, set[str]] = defaultdict(set)
    for index, source in enumerate(data_sources):
        source = str(source)
        values = {key: infos[key][index] for key in COUNT_KEYS}
        missing = [key for key, value in values.items() if _is_missing(value)]
        if missing:
            unparsed[source].append(index)
            missing_keys[source].update(missing)
            continue
        for key, value in values.items():
            sums[source][key] += _as_count(value, key, index, source)

    metrics: dict[str, float] = {}
    for source, counts in sums.items():
        for task in TASKS:
            if task == "response" and counts["has_response"] == 0:
                continue
            metrics[f"val-core/{source}/{task}_f1"] = f1_from_counts(
                counts[f"{task}_tp"], counts[f"{task}_fp"], counts[f"{task}_fn"]
            )
    for source, indices in unparsed.items():
        metrics[f"val-aux/{source}/{UNPARSED_METRIC}"] = float(len(indices))
        total = sum(1 for s in data_sources if str(s) == source)
        logger.warning(
            "validation F1, data_source %r: %d of %d samples have no value for reward key(s) %s (verl fills None "
            "when a sample's reward output lacks a key); counted as unparsed and left out of the F1 "
            "(sample indices %s%s)",
            source,
            len(indices),
            total,
            ", ".join(sorted(missing_keys[source])),
            ", ".join(map(str, indices[:10])),
            ", ..." if len(indices) > 10 else "",
        )
    return metrics
