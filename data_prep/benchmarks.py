"""The evaluation benchmarks (DESIGN.md §8): which task each scores, its layout, its full size.

Names are the file stems of the GuardReasoner / GuardReasoner-VL evaluation files (including the
upstream spelling ``XSTestReponseHarmful``). ``read_benchmark`` uses this table to know which label
a bare ``"harmful"`` in a text benchmark belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass

PROMPT, RESPONSE = "prompt", "response"
TEXT_LAYOUT, VL_LAYOUT = "text", "vl"


@dataclass(frozen=True)
class BenchmarkInfo:
    name: str
    #: tasks scored on this benchmark: ("prompt",), ("response",) or both
    tasks: tuple
    #: "text": rows {"input", "output"}; "vl": rows {"id", "messages"} with images matched by id
    layout: str
    #: full benchmark size in the paper's tables (0 when unknown)
    size: int


_TABLE = [
    BenchmarkInfo("ToxicChat", (PROMPT,), TEXT_LAYOUT, 2853),
    BenchmarkInfo("OpenAIModeration", (PROMPT,), TEXT_LAYOUT, 1680),
    BenchmarkInfo("AegisSafetyTest", (PROMPT,), TEXT_LAYOUT, 359),
    BenchmarkInfo("SimpleSafetyTests", (PROMPT,), TEXT_LAYOUT, 100),
    BenchmarkInfo("HarmBenchPrompt", (PROMPT,), TEXT_LAYOUT, 239),
    BenchmarkInfo("WildGuardTestPrompt", (PROMPT,), TEXT_LAYOUT, 1756),
    BenchmarkInfo("HarmImageTest", (PROMPT,), VL_LAYOUT, 3295),
    BenchmarkInfo("HarmBenchResponse", (RESPONSE,), TEXT_LAYOUT, 602),
    BenchmarkInfo("SafeRLHF", (RESPONSE,), TEXT_LAYOUT, 2000),
    BenchmarkInfo("BeaverTails", (RESPONSE,), TEXT_LAYOUT, 3021),
    BenchmarkInfo("XSTestReponseHarmful", (RESPONSE,), TEXT_LAYOUT, 446),
    BenchmarkInfo("WildGuardTestResponse", (RESPONSE,), TEXT_LAYOUT, 1768),
    BenchmarkInfo("SPA_VL_Eval", (PROMPT, RESPONSE), VL_LAYOUT, 3282),
]

BENCHMARKS: dict[str, BenchmarkInfo] = {info.name: info for info in _TABLE}
#: other spellings seen in papers and file names
ALIASES = {
    "XSTestResponseHarmful": "XSTestReponseHarmful",
    "SPA-VL-Eval": "SPA_VL_Eval",
    "SPAVLEval": "SPA_VL_Eval",
}


def benchmark_info(name: str) -> BenchmarkInfo:
    """The table entry for ``name`` (aliases accepted).

    Raises
    ------
    ValueError
        Listing every known benchmark.
    """
    key = ALIASES.get(name, name)
    if key not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)} (or pass task= explicitly)")
    return BENCHMARKS[key]
