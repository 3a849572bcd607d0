"""F1 from confusion counts: the paper's metric (harmful = positive, docs/design.md §8), pure Python.

The reward returns per-sample ``request_tp/fp/fn/tn`` and ``response_tp/fp/fn/tn`` indicators
(:mod:`rewards.guardreasoner_vl`); verl averages each per ``data_source`` during validation
(``val-aux/<data_source>/request_tp/mean@N``). F1 is a ratio of counts, so it comes out the same
from those means as from the sums: ``f1_from_counts(mean_tp, mean_fp, mean_fn)``.
"""

from __future__ import annotations

import math
import numbers

__all__ = ["f1_from_counts"]


def f1_from_counts(tp: float, fp: float, fn: float, *, zero_division: float = 0.0) -> float:
    """Binary F1 = 2·tp / (2·tp + fp + fn), as ``sklearn.metrics.f1_score`` computes it.

    Parameters
    ----------
    tp, fp, fn : float
        True positives, false positives, false negatives: sums, or means over the same samples
        (any common scale gives the same F1). Must be finite and non-negative.
    zero_division : float, default=0.0
        The value returned when F1 is undefined, i.e. when ``2·tp + fp + fn == 0``: the split has no
        harmful gold label and nothing was predicted harmful. Same meaning as scikit-learn's
        ``zero_division`` (0.0 is its default result, without the warning); pass ``math.nan`` to
        keep such splits out of averages, or 1.0 to count them as perfect.

    Returns
    -------
    float
        F1 in ``[0, 1]`` (or ``zero_division``). Multiply by 100 for the paper's tables.

    Raises
    ------
    ValueError
        If a count is negative, infinite or NaN (a bug upstream, never a real count).

    Notes
    -----
    A guard output that cannot be read counts as a wrong prediction upstream (``fn`` for a
    harmful gold, ``fp`` for an unharmful one), so parse failures lower F1 instead of vanishing.

    Examples
    --------
    >>> f1_from_counts(3, 1, 2)
    0.6666666666666666
    >>> f1_from_counts(0.375, 0.125, 0.25)  # the same counts as means over 8 samples
    0.6666666666666666
    >>> f1_from_counts(0, 0, 0, zero_division=1.0)
    1.0
    """
    for name, value in (("tp", tp), ("fp", fp), ("fn", fn)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0 <= value < math.inf):
            raise ValueError(f"{name} must be a finite non-negative number, got {value!r}")
    denominator = 2 * tp + fp + fn
    if denominator == 0:
        return float(zero_division)
    return 2 * tp / denominator
