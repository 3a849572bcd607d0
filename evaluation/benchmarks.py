"""The 14 benchmark/task pairs of the paper's evaluation (DESIGN.md §8) and how to load them.

Each :class:`BenchmarkSpec` names a benchmark, the task it is scored on (``prompt``: the request
label; ``response``: the response label), its modality and its expected size. WildGuardTest and
SPA-VL-Eval appear under both tasks. Files are read by the data helper's readers
(:func:`data_prep.readers.read_benchmark`), which yield :class:`~data_prep.record.GuardRecord`.

A benchmark file is found as ``DATA_DIR/[{task}/]{stem}.{json,jsonl,parquet}``, where the stem is
the released eval data's file name (``WildGuardTestPrompt``, ``WildGuardTestResponse``,
``SPA_VL_Eval`` (both tasks, one file), ``XSTestReponseHarmful`` (sic)) or the display name. A missing file, or a file whose row count differs from the
expected size, is an error unless ``allow_size_mismatch`` is set (mini benchmarks, subsets).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

from data_prep.record import IMAGE, TEXT, TEXT_IMAGE, GuardRecord

PROMPT, RESPONSE = "prompt", "response"
TASKS = (PROMPT, RESPONSE)
#: File extensions tried, in order, when resolving a benchmark file.
EXTENSIONS = (".json", ".jsonl", ".parquet")


@dataclass(frozen=True)
class BenchmarkSpec:
    """One benchmark scored on one task."""

    name: str
    task: str
    modality: str
    size: int
    #: file stem of the released eval data (upstream spellings, e.g. ``XSTestReponseHarmful``)
    file: str = ""

    def __post_init__(self) -> None:
        if not self.file:
            object.__setattr__(self, "file", self.name)

    @property
    def key(self) -> str:
        """Unique across the registry: ``prompt/WildGuardTest``."""
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


def get_spec(benchmark: str, task: str) -> BenchmarkSpec:
    """The registry entry for ``benchmark`` on ``task``; ``ValueError`` lists the valid ones."""
    spec = _BY_KEY.get(f"{task}/{benchmark}")
    if spec is None:
        valid = ", ".join(s.key for s in BENCHMARKS)
        raise ValueError(f"unknown benchmark {task}/{benchmark}; known: {valid}")
    return spec


def select(names: Optional[Sequence[str]] = None, tasks: Sequence[str] = TASKS) -> list[BenchmarkSpec]:
    """Registry entries filtered by benchmark name (or ``task/name`` key) and task, in paper order."""
    for task in tasks:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    specs = [s for s in BENCHMARKS if s.task in tasks]
    if names:
        wanted = set(names)
        known = {s.name for s in BENCHMARKS} | {s.key for s in BENCHMARKS}
        unknown = sorted(wanted - known)
        if unknown:
            raise ValueError(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        specs = [s for s in specs if s.name in wanted or s.key in wanted]
    if not specs:
        raise ValueError(f"no benchmark left after selecting names={names} tasks={list(tasks)}")
    return specs


def resolve_path(spec: BenchmarkSpec, data_dir: Union[str, Path]) -> Path:
    """The file holding ``spec`` under ``data_dir`` (see the module docstring for the layout)."""
    data_dir = Path(data_dir)
    stems = dict.fromkeys((spec.file, spec.name))  # upstream file stem first, then the display name
    folders = (data_dir / spec.task, data_dir)
    candidates = [folder / f"{stem}{ext}" for folder in folders for stem in stems for ext in EXTENSIONS]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"benchmark {spec.key}: no file found under {data_dir}; looked for "
        f"[{spec.task}/]{{{', '.join(stems)}}}.{{json,jsonl,parquet}}"
    )


def _reader():
    try:
        module = importlib.import_module("data_prep.readers")
    except ModuleNotFoundError as err:  # pragma: no cover - only while the readers are being written
        raise RuntimeError("data_prep.readers is not available; the benchmark readers live there") from err
    return module.read_benchmark


def load_benchmark(
    spec: BenchmarkSpec,
    data_dir: Union[str, Path],
    *,
    image_root: Optional[Union[str, Path]] = None,
    allow_size_mismatch: bool = False,
) -> list[GuardRecord]:
    """Read one benchmark and check it against the registry.

    Checks: the expected row count (unless ``allow_size_mismatch``), unique ids, and for the
    response task that every row has a response with a label.
    """
    path = resolve_path(spec, data_dir)
    # The reader's default is <file folder>/images/<stem>; --image-root replaces the
    # <file folder>/images part for every benchmark.
    root = Path(image_root) / spec.file if image_root is not None else None
    records = list(_reader()(spec.file, path, image_root=root))
    if not allow_size_mismatch and len(records) != spec.size:
        raise ValueError(
            f"benchmark {spec.key}: {path} has {len(records)} rows, the paper's set has {spec.size} "
            "(pass --allow-size-mismatch for subsets or mini benchmarks)"
        )
    if not records:
        raise ValueError(f"benchmark {spec.key}: {path} has no rows")
    seen: set[str] = set()
    for record in records:
        if record.id in seen:
            raise ValueError(f"benchmark {spec.key}: duplicate id {record.id!r} in {path}")
        seen.add(record.id)
        if spec.task == RESPONSE and not record.has_response:
            raise ValueError(f"benchmark {spec.key}: row {record.id!r} has no response to score")
    return records


def iter_all(
    specs: Sequence[BenchmarkSpec], data_dir: Union[str, Path], **kwargs
) -> Iterator[tuple[BenchmarkSpec, list[GuardRecord]]]:
    """``(spec, records)`` for each selected benchmark, loaded one at a time."""
    for spec in specs:
        yield spec, load_benchmark(spec, data_dir, **kwargs)
