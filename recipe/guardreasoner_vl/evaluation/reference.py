"""The paper's published numbers, shown beside ours in every report.

Source: GuardReasoner-VL (Liu et al., arXiv 2505.11049, NeurIPS 2025), the sample-weighted
"Average (All)" F1 of the prompt and response harmfulness detection tables, as recorded in this
project's DESIGN.md §8, and the mean output lengths reported there.

Only averages are listed. The per-benchmark F1 of each released checkpoint (the paper's Tables 1-2)
could not be retrieved from a source we could verify while writing this module, so no
per-benchmark reference number is shown rather than a guessed one. Add them here (with the table
they come from) once checked against the paper; the reports pick them up automatically.
"""

from __future__ import annotations

from typing import Mapping, Optional

#: model -> task -> average name -> F1 ×100. Average "all" = all benchmarks of the task,
#: weighted by sample count.
PAPER_AVERAGES: Mapping[str, Mapping[str, Mapping[str, float]]] = {
    "GuardReasoner-VL-7B": {"prompt": {"all": 79.07}, "response": {"all": 77.58}},
    "GuardReasoner-VL-3B": {"prompt": {"all": 78.73}, "response": {"all": 76.56}},
    "GuardReasoner-VL-Eco-7B": {"prompt": {"all": 77.49}, "response": {"all": 76.94}},
    "GuardReasoner-VL-Eco-3B": {"prompt": {"all": 77.39}, "response": {"all": 77.14}},
    "Qwen2.5-VL-7B-Instruct": {"prompt": {"all": 56.53}, "response": {"all": 61.58}},
    "LLaMA Guard 3 Vision": {"prompt": {"all": 48.03}, "response": {"all": 54.01}},
}

#: model -> task -> benchmark -> F1 ×100 (empty until verified against the paper's tables).
PAPER_PER_BENCHMARK: Mapping[str, Mapping[str, Mapping[str, float]]] = {}

#: Approximate mean output length in tokens of the released models (DESIGN.md §8).
PAPER_MEAN_OUTPUT_TOKENS: Mapping[str, str] = {
    "GuardReasoner-VL-7B": "about 208-213",
    "GuardReasoner-VL-3B": "about 208-213",
    "GuardReasoner-VL-Eco-7B": "about 180-187",
    "GuardReasoner-VL-Eco-3B": "about 180-187",
}

SOURCE = "GuardReasoner-VL, arXiv 2505.11049 (sample-weighted Average (All) F1, via DESIGN.md §8)"


def reference_value(model: str, task: str, column: str) -> Optional[float]:
    """The paper's number for ``model`` on ``task`` in ``column`` (a benchmark name, ``text`` or
    ``all``), or None when the paper's value is not recorded here."""
    avg = PAPER_AVERAGES.get(model, {}).get(task, {})
    if column in avg:
        return avg[column]
    return PAPER_PER_BENCHMARK.get(model, {}).get(task, {}).get(column)
