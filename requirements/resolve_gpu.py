"""Resolve the documented GPU install for Linux x86_64 / Python 3.12 without a GPU, and (re)write gpu.txt.

The GPU install is three ``pip install`` steps (docs/gpu_guide.md, between the ``gpu-install``
markers): CUDA torch first, flash-attn without build isolation (it compiles against that torch), then
the package with its ``gpu`` extra (verl's ``vllm`` extra). Every step takes ``-c requirements/gpu.txt``,
the exact set. This module reads those steps from the guide and runs them through pip's resolver as
a dry run for the target platform with binary wheels only, on any machine that reaches PyPI:

    python requirements/resolve_gpu.py --check     # resolve the documented steps against gpu.txt
    python requirements/resolve_gpu.py --write     # re-resolve without gpu.txt and rewrite it

Two packages have no wheel on PyPI: flash-attn (source only; step 2 builds it, or install a prebuilt
wheel) and antlr4-python3-runtime 4.9.3 (pure Python, which hydra-core pins; pip builds it in
seconds anywhere). The resolution builds the second and this package as wheels locally and lets pip
find them there; it never builds flash-attn. tests/test_install.py runs ``--check``'s function.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
GUIDE = REPO_ROOT / "docs" / "gpu_guide.md"
LOCK = REPO_ROOT / "requirements" / "gpu.txt"
#: The target: CPython 3.12 on manylinux x86_64 up to glibc 2.35 (Ubuntu 22.04, verl's image base).
PYTHON_VERSION = "3.12"
GLIBC_MAX = 35
PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(GLIBC_MAX, 16, -1)] + ["manylinux2014_x86_64"]
#: Source-only on PyPI and pure Python: built locally as a wheel for the binary-only resolution.
PURE_PYTHON_SDISTS = ("antlr4-python3-runtime",)
#: Source-only on PyPI and needs CUDA + torch to build: the guide's step 2, never resolved binary-only.
BUILT_ON_THE_HOST = "flash-attn"
PACKAGE = "guardreasoner-vl"

_BLOCK = re.compile(r"<!-- gpu-install -->\s*```bash\n(.*?)```", re.S)


@dataclass(frozen=True)
class Step:
    """One ``pip install`` line of the guide."""

    line: str
    requirements: tuple[str, ...]
    options: tuple[str, ...]


def install_steps(markdown: str) -> list[Step]:
    """The ``pip install`` lines of the ``gpu-install`` block of ``markdown`` (comments dropped)."""
    match = _BLOCK.search(markdown)
    if not match:
        raise ValueError("no <!-- gpu-install --> bash block in the guide")
    steps = []
    for raw in match.group(1).splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line.startswith("pip install"):
            continue
        words = shlex.split(line)[2:]
        options, requirements, i = [], [], 0
        while i < len(words):
            word = words[i]
            if word in ("-c", "--constraint"):
                options += [word, words[i + 1]]
                i += 2
            elif word.startswith("-"):
                options.append(word)
                i += 1
            else:
                requirements.append(word)
                i += 1
        steps.append(Step(line, tuple(requirements), tuple(options)))
    return steps


def lock_pins(path: Path = LOCK) -> dict[str, str]:
    """``name -> version`` of a ``name==version`` file (comments and blank lines ignored)."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[_canonical(name)] = version
    return pins


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pip(*args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True, text=True, timeout=timeout,
    )


def build_local_wheels(folder: Path) -> Path:
    """This package and the pure-Python source-only dependencies, as wheels in ``folder``."""
    result = _pip("wheel", "--no-deps", "-q", "-w", str(folder), str(REPO_ROOT))
    if result.returncode:
        raise RuntimeError(f"building the package's wheel failed:\n{result.stderr[-3000:]}")
    pins = lock_pins() if LOCK.is_file() else {}
    for name in PURE_PYTHON_SDISTS:
        spec = f"{name}=={pins[name]}" if name in pins else f"{name}==4.9.3"
        result = _pip("wheel", "--no-deps", "-q", "--no-binary", name, "-w", str(folder), spec)
        if result.returncode:
            raise RuntimeError(f"building {spec} failed:\n{result.stderr[-3000:]}")
    return folder


def dry_run(requirements: list[str], *, constraints: Path | None, find_links: Path, work: Path) -> dict[str, str]:
    """pip's resolution of ``requirements`` for the target, binary wheels only: ``name -> version``.

    Raises ``RuntimeError`` with pip's message when it does not resolve.
    """
    args = ["install", "--dry-run", "--ignore-installed", "--only-binary", ":all:", "--python-version",
            PYTHON_VERSION, "--implementation", "cp", "--target", str(work / "target"), "--report",
            str(work / "report.json"), "--find-links", str(find_links), "-q"]
    for platform in PLATFORMS:
        args += ["--platform", platform]
    if constraints is not None:
        args += ["-c", str(constraints)]
    result = _pip(*args, *requirements)
    if result.returncode:
        raise RuntimeError(result.stderr.strip()[-4000:])
    report = json.loads((work / "report.json").read_text())
    return {_canonical(item["metadata"]["name"]): item["metadata"]["version"] for item in report["install"]}


def _package_requirement(requirement: str, version: str) -> str:
    """``.[gpu]`` / ``-e .[gpu]`` of the guide -> ``guardreasoner-vl[gpu]==<version>`` (found as a local wheel)."""
    match = re.fullmatch(r"\.(\[[\w,-]+\])?", requirement)
    return f"{PACKAGE}{match.group(1) or ''}=={version}" if match else requirement


def _package_version() -> str:
    text = (REPO_ROOT / "setup.py").read_text()
    return re.search(r'version="([^"]+)"', text).group(1)


def resolve_documented_steps(*, use_lock: bool = True) -> tuple[dict[str, str], str]:
    """Resolve the guide's steps together (all but the flash-attn step) and try flash-attn binary-only.

    Returns ``(resolved name -> version, pip's message for flash-attn)``.
    """
    steps = install_steps(GUIDE.read_text())
    version = _package_version()
    requirements: list[str] = []
    flash_attn: list[str] = []
    for step in steps:
        reqs = [_package_requirement(r, version) for r in step.requirements]
        if any(_canonical(r).startswith(BUILT_ON_THE_HOST) for r in reqs):
            flash_attn += reqs
        else:
            requirements += reqs
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        wheels = build_local_wheels(work / "wheels")
        constraints = LOCK if use_lock else None
        resolved = dry_run(requirements, constraints=constraints, find_links=wheels, work=work)
        if use_lock:  # the pinned version, asked for directly: pip's message then names it
            pinned = lock_pins().get(BUILT_ON_THE_HOST)
            flash_attn = [f"{BUILT_ON_THE_HOST}=={pinned}" if _canonical(r) == BUILT_ON_THE_HOST else r for r in flash_attn]
        try:
            dry_run(flash_attn, constraints=None, find_links=wheels, work=work)
            message = ""
        except RuntimeError as err:
            message = str(err)
    return resolved, message


def write_lock(resolved: dict[str, str], flash_attn_version: str) -> None:
    """Rewrite gpu.txt from a resolution (sorted, exact pins, flash-attn added for step 2)."""
    pins = {name: v for name, v in resolved.items() if name != PACKAGE}
    pins[BUILT_ON_THE_HOST] = flash_attn_version
    header = [
        "# The exact GPU install set: CPython 3.12, Linux x86_64 (manylinux, glibc <= 2.35), CUDA 13.0 builds of torch",
        "# 2.11, verl 0.9.1 with its vLLM extra. A constraints file: every step of the GPU install takes",
        "# -c requirements/gpu.txt (docs/gpu_guide.md#install); flash-attn is built in its own step, after torch.",
        "# Regenerate with: python requirements/resolve_gpu.py --write (checked by tests/test_install.py).",
    ]
    body = [f"{name}=={pins[name]}" for name in sorted(pins)]
    LOCK.write_text("\n".join(header + body) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="resolve the documented steps against gpu.txt")
    mode.add_argument("--write", action="store_true", help="resolve without gpu.txt and rewrite it")
    args = parser.parse_args(argv)
    resolved, flash_message = resolve_documented_steps(use_lock=args.check)
    if args.write:
        write_lock(resolved, lock_pins().get(BUILT_ON_THE_HOST, "2.8.3") if LOCK.is_file() else "2.8.3")
        print(f"wrote {LOCK} ({len(resolved)} packages)")
        return 0
    pins = lock_pins()
    drift = {n: (v, pins.get(n)) for n, v in resolved.items() if n != PACKAGE and pins.get(n) != v}
    print(f"resolved {len(resolved)} packages; differing from gpu.txt: {drift or 'none'}")
    print(f"flash-attn binary-only: {'does not resolve (built in step 2)' if flash_message else 'resolves'}")
    return 1 if drift else 0


if __name__ == "__main__":
    sys.exit(main())
