"""Host side of the carrier: verify chunk set N, put the wheels back together, install after the last set.

The GPU host has no package index and each device call brings at most 64 MiB, so the wheels
``carrier.py`` prepared arrive one chunk set per call, in order. Run this once per call, carrying that
set (``.gpu_wheels/chunks/NN``); files of earlier calls stay on the host while it is up::

    python3 benchmarks/gpu/host_install.py 1      # call 1 carries .gpu_wheels/chunks/01
    python3 benchmarks/gpu/host_install.py 2      # call 2 carries .gpu_wheels/chunks/02
    ...
    python3 benchmarks/gpu/host_install.py 4      # the last set: install, then check the imports

Each call checks every chunk that has arrived (size and sha256 against the manifest) and writes the
wheels whose bytes are all there to ``.gpu_wheels/host/``, each checked against its own sha256. A
corrupt or missing set stops it with the set to carry again; nothing unverified is installed. After
the last set it installs all wheels in one offline pip call (``--no-index --no-deps --target
.gpu_site``: one call, because separate ``--target`` installs drop the files of shared folders such as
``bin/`` or namespace packages), then imports verl's trainer and the recipe with the carried
packages first on the path. Rerunning a step is safe: verified wheels and a finished install are kept.

Every later command uses the installed set through ``benchmarks/gpu/env.sh`` (``run.sh`` sources it).
Standard library only (it runs before anything is installed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.gpu import chunks  # noqa: E402  (stdlib only, like this script)

DEFAULT_CHUNKS = REPO_ROOT / ".gpu_wheels" / "chunks"
DEFAULT_WHEELS = REPO_ROOT / ".gpu_wheels" / "host"
DEFAULT_SITE = REPO_ROOT / ".gpu_site"
STAMP = ".installed.json"

#: What the trainer imports, checked after the install in the environment ``env.sh`` gives every later
#: command (the carried packages first on the path; the recipe's plugin loaded through verl's module list).
IMPORT_CHECK = """
import importlib, importlib.metadata, json
mods = ["verl", "ray", "transfer_queue", "transformers", "tokenizers", "tensordict", "hydra", "omegaconf",
        "qwen_vl_utils", "torchvision", "torch", "pyarrow", "pandas", "datasets", "fastapi", "uvicorn", "zmq"]
owners = importlib.metadata.packages_distributions()
found = {}
for name in mods:
    module = importlib.import_module(name)
    found[name] = {"version": str(getattr(module, "__version__", "")), "file": str(getattr(module, "__file__", "")),
                   "dists": owners.get(name, [])}
import verl.trainer.main_ppo  # noqa: F401  (verl's whole trainer import chain)
import recipe.guardreasoner_vl.main_grpo, recipe.guardreasoner_vl.trainer  # noqa: F401,E401
from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY
assert "guardreasoner_dynamic_clip" in POLICY_LOSS_REGISTRY, "the recipe's plugin did not load"
print(json.dumps(found))
"""


def manifest_digest(manifest: chunks.Manifest) -> str:
    return hashlib.sha256(manifest.to_json().encode()).hexdigest()


def install(wheels: Sequence[Path], site: Path, digest: str) -> bool:
    """Install ``wheels`` into ``site`` with one offline pip call (built aside, then renamed into place).

    Returns False when ``site`` already holds this exact set."""
    stamp = site / STAMP
    if stamp.is_file() and json.loads(stamp.read_text()).get("manifest_sha256") == digest:
        return False
    work = site.with_name(site.name + ".incomplete")
    shutil.rmtree(work, ignore_errors=True)
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--no-compile",
        "--no-cache-dir", "--disable-pip-version-check", "--target", str(work), *map(str, wheels),
    ]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"host_install.py: pip install failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    (work / STAMP).write_text(json.dumps({"manifest_sha256": digest, "wheels": [w.name for w in wheels]}, indent=1))
    shutil.rmtree(site, ignore_errors=True)
    os.replace(work, site)
    return True


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def check_imports(site: Path, manifest: chunks.Manifest) -> dict[str, dict]:
    """Import the trainer with the carried set; a module of a carried wheel must come from ``site``
    (not from the host's own, possibly other, version)."""
    # Through env.sh, as every later command runs: one definition of the host's environment.
    script = f'source "{HERE / "env.sh"}" && exec "$0" -c "$1"'
    proc = subprocess.run(
        ["bash", "-c", script, sys.executable, IMPORT_CHECK],
        env={**os.environ, "GPU_SITE": str(site)}, cwd=REPO_ROOT, capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"host_install.py: the import check failed:\n{proc.stderr[-4000:]}")
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    carried = {_canonical(w.file.split("-")[0]) for w in manifest.wheels}
    for module, info in found.items():
        if {_canonical(d) for d in info["dists"]} & carried and not Path(info["file"]).resolve().is_relative_to(site.resolve()):
            raise SystemExit(f"host_install.py: {module} was imported from {info['file']}, not from the carried set in {site}")
    return found


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="host_install.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("set", type=int, help="the chunk set this call carried (1, 2, ...); the last one installs")
    parser.add_argument("--chunks", type=Path, default=DEFAULT_CHUNKS, help="chunk folder (default .gpu_wheels/chunks)")
    parser.add_argument("--wheels", type=Path, default=DEFAULT_WHEELS, help="reassembled wheels (default .gpu_wheels/host)")
    parser.add_argument("--site", type=Path, default=DEFAULT_SITE, help="install target (default .gpu_site)")
    parser.add_argument("--no-check", action="store_true", help="skip the import check after the install")
    args = parser.parse_args(argv)
    try:
        report = chunks.assemble(args.chunks, args.wheels, upto=args.set)
    except chunks.ChunkError as err:
        print(f"host_install.py: error: {err}", file=sys.stderr)
        return 1
    total = len(report.manifest.chunks)
    print(
        f"chunk sets 01..{args.set:02d} of {total:02d} verified; {len(report.ready)} of "
        f"{len(report.manifest.wheels)} wheels reassembled and checked in {args.wheels}",
        flush=True,
    )
    if not report.complete:
        print(f"next: carry {args.chunks.name}/{args.set + 1:02d} and run host_install.py {args.set + 1}")
        return 0
    digest = manifest_digest(report.manifest)
    installed = install(report.ready, args.site, digest)
    print(f"{'installed' if installed else 'already installed'}: {len(report.ready)} wheels in {args.site}", flush=True)
    if not args.no_check:
        found = check_imports(args.site, report.manifest)
        print("imports ok: " + ", ".join(f"{name} {info['version'] or '?'}" for name, info in sorted(found.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
