"""Sample the RL pool and split it train/val (docs/design.md §6: 12K samples, 80/20), seeded.

The sample and the split are drawn from a ``random.Random(seed)``: the same pool and seed always
give the same two files, whatever order the caller later reads them in.
"""

from __future__ import annotations

import random
from typing import Optional, Sequence

from data_prep.record import GuardRecord

#: Paper: 12K RL samples (of which 2.4K concatenated, added later by build-rl / concat).
DEFAULT_POOL_SIZE = 12_000
DEFAULT_VAL_FRACTION = 0.2


def split_pool(
    records: Sequence[GuardRecord],
    *,
    size: Optional[int] = DEFAULT_POOL_SIZE,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    seed: int = 0,
) -> tuple[list[GuardRecord], list[GuardRecord]]:
    """``(train, val)``: ``min(size, len(records))`` rows sampled without replacement, then split.

    ``size=None`` takes every row. ``len(val) = round(n * val_fraction)``.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if size is not None and size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        raise ValueError("the pool has duplicate ids; deduplicate before splitting")
    n = len(records) if size is None else min(size, len(records))
    rng = random.Random(seed)
    chosen = rng.sample(range(len(records)), n)  # also a random order
    n_val = round(n * val_fraction)
    val = [records[i] for i in chosen[:n_val]]
    train = [records[i] for i in chosen[n_val:]]
    return train, val
