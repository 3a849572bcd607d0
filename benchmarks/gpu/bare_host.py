"""Rehearse the bare GPU host on this machine: does the carried wheel set alone run the trainer?

The GPU host has torch and a few other packages, nothing of verl's stack, and no package index. The
carrier leaves out what it believes the trainer never imports and what the host already has; a wrong
guess would only show on the host, minutes into scarce device time. This script checks the guess here,
on the CPU, with the same code path:

1. ``host``: writes a host list for this machine (``name==version``): the names of
   ``host_packages.txt`` with the versions installed in this interpreter's environment, minus those the
   GPU host's list could not supply (``selection.json`` of the GPU carrier run: ``host_shadowed``);
2. ``carry``: runs ``carrier.py`` for this interpreter with that list (``.gpu_wheels/bare/``);
3. ``venv``: makes a virtualenv that sees ONLY those host packages and what they require (symbolic
   links into this environment's site-packages), like the GPU host's image;
4. ``install``: runs ``host_install.py`` with that virtualenv's python once per chunk set, as the
   device calls would (the last set installs into ``.gpu_runs/bare/site`` and checks the imports);
5. ``run``: runs ``grpo_resume.py`` and ``sft_steps.py`` with ``DEVICE=cpu`` in that virtualenv,
   through ``run.sh`` with ``GPU_SITE`` pointing at the installed set.

``all`` does the five in order. Steps 4-5 start the trainer (heavy: wrap them in ``flock``)::

    python benchmarks/gpu/bare_host.py all
    python benchmarks/gpu/bare_host.py run        # again, after a code change
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.gpu import carrier  # noqa: E402

OUT = REPO_ROOT / ".gpu_wheels" / "bare"
BARE = REPO_ROOT / ".gpu_runs" / "bare"
HOST_LIST = OUT / "host_packages.txt"


def host_list() -> dict[str, str]:
    """This environment's versions of the GPU host's listed packages (those the GPU set can use)."""
    gpu = carrier.read_host_packages(carrier.DEFAULT_HOST_PACKAGES)
    selection = carrier.DEFAULT_OUT / "selection.json"
    shadowed = set(json.loads(selection.read_text()).get("host_shadowed", {})) if selection.is_file() else set()
    host = {}
    for name in gpu:
        if name in shadowed:
            continue
        try:
            host[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    OUT.mkdir(parents=True, exist_ok=True)
    HOST_LIST.write_text("".join(f"{name}=={version}\n" for name, version in sorted(host.items())))
    return host


def requirement_closure(names: Sequence[str]) -> list[metadata.Distribution]:
    """The installed distributions ``names`` need, recursively (markers evaluated for this interpreter)."""
    env = default_environment()
    seen: dict[str, metadata.Distribution] = {}
    queue = [canonicalize_name(n) for n in names]
    while queue:
        name = queue.pop()
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen[name] = dist
        for raw in dist.requires or []:
            req = Requirement(raw)
            if req.marker is None or req.marker.evaluate({**env, "extra": ""}):
                queue.append(canonicalize_name(req.name))
    return list(seen.values())


def make_venv(host: dict[str, str]) -> Path:
    """A virtualenv whose site-packages links only the host packages and their requirements."""
    venv = BARE / "venv"
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    linked = set()
    for dist in requirement_closure(list(host)):
        for file in dist.files or []:
            parts = Path(file).parts
            if not parts or parts[0] in ("..", "__pycache__") or parts[0].endswith(".pth"):
                continue
            top = parts[0]
            target = Path(dist.locate_file(top))
            if top in linked or not target.exists() or (site / top).exists():  # pip, setuptools: the venv's own
                continue
            (site / top).symlink_to(target)
            linked.add(top)
    print(f"bare venv {venv}: {len(linked)} top-level names linked from this environment")
    return python


def install(python: Path) -> None:
    manifest = json.loads(next((OUT / "chunks").glob("*/manifest.json")).read_text())
    sets = len(manifest["chunks"])
    for number in range(1, sets + 1):
        subprocess.run(
            [
                str(python), str(REPO_ROOT / "benchmarks" / "gpu" / "host_install.py"), str(number),
                "--chunks", str(OUT / "chunks"), "--wheels", str(BARE / "wheels"), "--site", str(BARE / "site"),
            ],
            check=True,
            env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")},
        )


def run(python: Path, results: Optional[Path]) -> int:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(DEVICE="cpu", PYTHON=str(python), GPU_SITE=str(BARE / "site"))
    code = 0
    for command in ("grpo", "sft"):
        args = ["bash", str(REPO_ROOT / "benchmarks" / "gpu" / "run.sh"), command, "--work", str(BARE / command)]
        if results is not None:
            args += ["--json", str(results / f"{command}.json")]
        code |= subprocess.run(args, env=env).returncode
    return code


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="bare_host.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["host", "carry", "venv", "install", "run", "all"])
    parser.add_argument("--json-dir", type=Path, default=None, help="write the runs' JSON results into this folder")
    args = parser.parse_args(argv)
    python = BARE / "venv" / "bin" / "python"
    host = host_list() if args.step in ("host", "carry", "venv", "all") else {}
    if args.step in ("host", "all"):
        print(f"host list for this machine -> {HOST_LIST}: {', '.join(f'{n}=={v}' for n, v in sorted(host.items()))}")
    if args.step in ("carry", "all"):
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        code = carrier.main(["--python-version", version, "--host-packages", str(HOST_LIST), "--out", str(OUT), "--reuse-resolution"])
        if code:
            return code
    if args.step in ("venv", "all"):
        python = make_venv(host)
    if args.step in ("install", "all"):
        install(python)
    if args.step in ("run", "all"):
        return run(python, args.json_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
