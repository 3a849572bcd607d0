"""The evaluation benchmarks: the one table every part of the project names them from.

The paper scores 14 benchmark/task pairs (8 prompt, 6 response) held in 13 released files.
Each :class:`BenchmarkSpec` is one pair, in the column order of the paper's Tables 1 (prompt) and 2
(response): its display ``name`` (the paper's spelling, used as the ``data_source`` of RL
validation rows, in generation logs and in every result table), the ``task`` it is scored on
(``prompt``: the request label; ``response``: the response label), its modality, its full size,
and the stem of the released file holding it (``SPA_VL_Eval`` holds SPA-VL-Eval for both tasks;
WildGuardTest comes as two files; ``XSTestReponseHarmful`` is the upstream spelling).

:func:`benchmark_file` answers the readers' question for a released file: which display name it
carries, which tasks it scores (so a bare ``"harmful"`` in a text benchmark goes to the right label),
and its layout (``{"input", "output"}`` text rows or ``{"id", "messages"}`` rows with images).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from data_prep.record import IMAGE, TEXT, TEXT_IMAGE

PROMPT, RESPONSE = "prompt", "response"
TASKS = (PROMPT, RESPONSE)
TEXT_LAYOUT, VL_LAYOUT = "text", "vl"


@dataclass(frozen=True)
class BenchmarkSpec:
    """One benchmark scored on one task."""

    name: str
    task: str
    modality: str
    size: int
    #: stem of the released evaluation file (upstream spelling); the display name when empty
    file: str = ""

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"benchmark {self.name}: task must be one of {TASKS}, got {self.task!r}")
        if not self.file:
            object.__setattr__(self, "file", self.name)

    @property
    def key(self) -> str:
        """Unique across the table: ``prompt/WildGuardTest``."""
        return f"{self.task}/{self.name}"

    @property
    def is_text(self) -> bool:
        """Counted in the "Text" average (the paper's text-only benchmarks)."""
        return self.modality == TEXT


#: In the column order of the paper's Tables 1 (prompt) and 2 (response).
BENCHMARKS: tuple[BenchmarkSpec, ...] = (
    BenchmarkSpec("ToxicChat", PROMPT, TEXT, 2853),
    BenchmarkSpec("HarmBenchPrompt", PROMPT, TEXT, 239),
    BenchmarkSpec("OpenAIModeration", PROMPT, TEXT, 1680),
    BenchmarkSpec("AegisSafetyTest", PROMPT, TEXT, 359),
    BenchmarkSpec("SimpleSafetyTests", PROMPT, TEXT, 100),
    BenchmarkSpec("WildGuardTest", PROMPT, TEXT, 1756, "WildGuardTestPrompt"),
    BenchmarkSpec("HarmImageTest", PROMPT, IMAGE, 3295),
    BenchmarkSpec("SPA-VL-Eval", PROMPT, TEXT_IMAGE, 3282, "SPA_VL_Eval"),
    BenchmarkSpec("HarmBenchResponse", RESPONSE, TEXT, 602),
    BenchmarkSpec("SafeRLHF", RESPONSE, TEXT, 2000),
    BenchmarkSpec("BeaverTails", RESPONSE, TEXT, 3021),
    BenchmarkSpec("XSTestResponseHarmful", RESPONSE, TEXT, 446, "XSTestReponseHarmful"),
    BenchmarkSpec("WildGuardTest", RESPONSE, TEXT, 1768, "WildGuardTestResponse"),
    BenchmarkSpec("SPA-VL-Eval", RESPONSE, TEXT_IMAGE, 3282, "SPA_VL_Eval"),
)

_BY_KEY = {spec.key: spec for spec in BENCHMARKS}


@dataclass(frozen=True)
class BenchmarkFile:
    """One released evaluation file: what the readers need to turn its rows into records."""

    stem: str
    name: str
    tasks: tuple
    modality: str

    @property
    def layout(self) -> str:
        """``text``: rows ``{"input", "output"}``; ``vl``: rows ``{"id", "messages"}`` with images by id."""
        return TEXT_LAYOUT if self.modality == TEXT else VL_LAYOUT

    def specs(self) -> list[BenchmarkSpec]:
        """The table entries this file holds."""
        return [s for s in BENCHMARKS if s.file == self.stem]


def _files() -> dict[str, BenchmarkFile]:
    files: dict[str, BenchmarkFile] = {}
    for spec in BENCHMARKS:
        known = files.get(spec.file)
        tasks = (known.tasks if known else ()) + (spec.task,)
        files[spec.file] = BenchmarkFile(spec.file, spec.name, tasks, spec.modality)
    return files


#: Released file stem -> its entry, in table order.
BENCHMARK_FILES: dict[str, BenchmarkFile] = _files()


def benchmark_file(stem: str) -> BenchmarkFile:
    """The released file ``stem`` (``ToxicChat``, ``SPA_VL_Eval``, ...); a display name that names
    exactly one file (``SPA-VL-Eval``, ``XSTestResponseHarmful``) is accepted too.

    Raises
    ------
    ValueError
        Listing every known file stem.
    """
    if stem in BENCHMARK_FILES:
        return BENCHMARK_FILES[stem]
    by_name = [f for f in BENCHMARK_FILES.values() if f.name == stem]
    if len(by_name) == 1:
        return by_name[0]
    hint = f" ({stem} comes as {', '.join(f.stem for f in by_name)})" if by_name else ""
    raise ValueError(
        f"unknown benchmark file {stem!r}{hint}; known: {', '.join(BENCHMARK_FILES)} (or pass task= explicitly)"
    )


def get_spec(benchmark: str, task: str) -> BenchmarkSpec:
    """The table entry for ``benchmark`` (display name) on ``task``; ``ValueError`` lists the valid ones."""
    spec = _BY_KEY.get(f"{task}/{benchmark}")
    if spec is None:
        raise ValueError(f"unknown benchmark {task}/{benchmark}; known: {', '.join(s.key for s in BENCHMARKS)}")
    return spec


def select(names: Optional[Sequence[str]] = None, tasks: Sequence[str] = TASKS) -> list[BenchmarkSpec]:
    """Table entries filtered by name (display name, file stem or ``task/name`` key) and task, in paper order.

    >>> [s.key for s in select(["SPA-VL-Eval"])]
    ['prompt/SPA-VL-Eval', 'response/SPA-VL-Eval']
    >>> [s.key for s in select(["WildGuardTestResponse"])]
    ['response/WildGuardTest']
    """
    for task in tasks:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    specs = [s for s in BENCHMARKS if s.task in tasks]
    if names:
        wanted = set(names)
        known = {s.name for s in BENCHMARKS} | {s.key for s in BENCHMARKS} | set(BENCHMARK_FILES)
        unknown = sorted(wanted - known)
        if unknown:
            raise ValueError(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        specs = [s for s in specs if wanted & {s.name, s.key, s.file}]
    if not specs:
        raise ValueError(f"no benchmark left after selecting names={list(names or [])} tasks={list(tasks)}")
    return specs
