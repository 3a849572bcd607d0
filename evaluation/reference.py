"""The paper's published numbers, shown beside ours in every report.

Source: GuardReasoner-VL (Liu et al., arXiv 2505.11049, NeurIPS 2025), Table 1 (F1 %, prompt
harmfulness detection, 8 benchmarks) and Table 2 (F1 %, response harmfulness detection, 6
benchmarks), for the released checkpoints and the two VLM baselines docs/design.md §8 names. The tables
were read from a stored text copy of the paper (retrieved through this project's search tool); the
"Average (All)" values agree with docs/design.md §8.

Consistency check (``tests/test_eval_metrics.py``): the sample-weighted averages of the
per-benchmark numbers below, with the registry's sizes, reproduce the paper's "Average (Text)" and
"Average (All)" columns within 0.05 for every model listed, which confirms both the numbers and the
weighting (the residue is the per-benchmark rounding to two decimals).
"""

from __future__ import annotations

from typing import Mapping, Optional

#: model -> task -> benchmark (registry name) -> F1 ×100, as printed in Tables 1-2.
PAPER_PER_BENCHMARK: Mapping[str, Mapping[str, Mapping[str, float]]] = {
    "GuardReasoner-VL-7B": {
        "prompt": {"ToxicChat": 76.51, "HarmBenchPrompt": 98.30, "OpenAIModeration": 70.98, "AegisSafetyTest": 90.13,
                   "SimpleSafetyTests": 98.99, "WildGuardTest": 88.35, "HarmImageTest": 70.84, "SPA-VL-Eval": 85.60},
        "response": {"HarmBenchResponse": 87.22, "SafeRLHF": 66.37, "BeaverTails": 84.76,
                     "XSTestResponseHarmful": 92.72, "WildGuardTest": 79.04, "SPA-VL-Eval": 73.22},
    },
    "GuardReasoner-VL-3B": {
        "prompt": {"ToxicChat": 74.45, "HarmBenchPrompt": 89.10, "OpenAIModeration": 70.83, "AegisSafetyTest": 88.79,
                   "SimpleSafetyTests": 99.50, "WildGuardTest": 88.92, "HarmImageTest": 70.93, "SPA-VL-Eval": 86.47},
        "response": {"HarmBenchResponse": 85.76, "SafeRLHF": 66.37, "BeaverTails": 85.16,
                     "XSTestResponseHarmful": 93.08, "WildGuardTest": 76.07, "SPA-VL-Eval": 71.19},
    },
    "GuardReasoner-VL-Eco-7B": {
        "prompt": {"ToxicChat": 76.26, "HarmBenchPrompt": 98.73, "OpenAIModeration": 70.82, "AegisSafetyTest": 90.34,
                   "SimpleSafetyTests": 99.50, "WildGuardTest": 88.54, "HarmImageTest": 64.84, "SPA-VL-Eval": 85.26},
        "response": {"HarmBenchResponse": 86.22, "SafeRLHF": 66.15, "BeaverTails": 85.51,
                     "XSTestResponseHarmful": 93.33, "WildGuardTest": 78.60, "SPA-VL-Eval": 70.81},
    },
    "GuardReasoner-VL-Eco-3B": {
        "prompt": {"ToxicChat": 73.47, "HarmBenchPrompt": 88.58, "OpenAIModeration": 70.87, "AegisSafetyTest": 89.04,
                   "SimpleSafetyTests": 99.50, "WildGuardTest": 89.16, "HarmImageTest": 66.79, "SPA-VL-Eval": 85.82},
        "response": {"HarmBenchResponse": 84.72, "SafeRLHF": 66.96, "BeaverTails": 85.39,
                     "XSTestResponseHarmful": 93.59, "WildGuardTest": 77.39, "SPA-VL-Eval": 72.01},
    },
    "Qwen2.5-VL-7B-Instruct": {
        "prompt": {"ToxicChat": 40.99, "HarmBenchPrompt": 91.61, "OpenAIModeration": 57.21, "AegisSafetyTest": 81.58,
                   "SimpleSafetyTests": 100.00, "WildGuardTest": 74.77, "HarmImageTest": 43.88, "SPA-VL-Eval": 66.02},
        "response": {"HarmBenchResponse": 65.21, "SafeRLHF": 59.73, "BeaverTails": 77.29,
                     "XSTestResponseHarmful": 47.06, "WildGuardTest": 42.21, "SPA-VL-Eval": 60.00},
    },
    "LLaMA Guard 3 Vision": {
        "prompt": {"ToxicChat": 58.19, "HarmBenchPrompt": 96.09, "OpenAIModeration": 67.64, "AegisSafetyTest": 70.62,
                   "SimpleSafetyTests": 97.96, "WildGuardTest": 75.19, "HarmImageTest": 0.48, "SPA-VL-Eval": 54.86},
        "response": {"HarmBenchResponse": 80.95, "SafeRLHF": 41.72, "BeaverTails": 64.98,
                     "XSTestResponseHarmful": 81.08, "WildGuardTest": 56.51, "SPA-VL-Eval": 41.43},
    },
}  # fmt: skip

#: model -> task -> average ("text", "all") -> F1 ×100, as printed in Tables 1-2.
PAPER_AVERAGES: Mapping[str, Mapping[str, Mapping[str, float]]] = {
    "GuardReasoner-VL-7B": {"prompt": {"text": 79.88, "all": 79.07}, "response": {"text": 79.42, "all": 77.58}},
    "GuardReasoner-VL-3B": {"prompt": {"text": 78.77, "all": 78.73}, "response": {"text": 78.83, "all": 76.56}},
    "GuardReasoner-VL-Eco-7B": {"prompt": {"text": 79.82, "all": 77.49}, "response": {"text": 79.51, "all": 76.94}},
    "GuardReasoner-VL-Eco-3B": {"prompt": {"text": 78.43, "all": 77.39}, "response": {"text": 79.31, "all": 77.14}},
    "Qwen2.5-VL-7B-Instruct": {"prompt": {"text": 58.04, "all": 56.53}, "response": {"text": 62.25, "all": 61.58}},
    "LLaMA Guard 3 Vision": {"prompt": {"text": 67.24, "all": 48.03}, "response": {"text": 59.28, "all": 54.01}},
}

SOURCE = "GuardReasoner-VL, arXiv 2505.11049, Table 1 (prompt) and Table 2 (response), F1 %"


def reference_value(model: str, task: str, column: str) -> Optional[float]:
    """The paper's number for ``model`` on ``task`` in ``column`` (a benchmark name, ``text`` or
    ``all``), or None when the paper's value is not recorded here."""
    avg = PAPER_AVERAGES.get(model, {}).get(task, {})
    if column in avg:
        return avg[column]
    return PAPER_PER_BENCHMARK.get(model, {}).get(task, {}).get(column)
