"""The carrier: resolve, download and chunk the wheels a bare GPU host needs to run the recipe's trainer.

The GPU host has Python 3.12 and CUDA torch 2.11.0, but no package index and none of verl's stack, and
files reach it in transfers of at most 64 MiB. This script runs on a machine with an index and prepares
everything the host needs, under the ignored folder ``.gpu_wheels/``:

1. **Resolve with pip, not by hand.** ``pip install --dry-run --report`` resolves the roots (below) for
   CPython 3.12 on manylinux x86_64, binary wheels only, with the host's torch pinned so that every
   torch-dependent package (tensordict, torchdata, torchvision, ...) is picked for *that* torch. Packages
   the index has only as source (``antlr4-python3-runtime``, needed by hydra/omegaconf) are found by a
   first resolution for this interpreter, built here as pure-Python wheels and offered to the second
   resolution; without them pip would silently fall back to a years-old hydra. The two resolutions must
   agree on every version the host gets.
2. **Subtract what the host has.** The host's torch and everything it requires (CUDA libraries, triton,
   sympy, ...) are dropped, and so is each package of ``host_packages.txt`` (what the host is known to
   hold) whose version satisfies every requirement of the set on it; one that does not (the host's
   transformers is newer than verl allows) is carried and shadows the host's. Also dropped: the few
   packages verl's extras list but the trainer never imports (:data:`EXCLUDED`, each with its reason),
   with whatever only they require. The rest is exactly the dependency closure pip resolved.
3. **Download** the selected wheels (``pip download --no-deps --require-hashes``: pip checks each
   against the index's sha256).
4. **Chunk** them into sets of at most 60 MiB with a sha256 manifest (``chunks.py``); the host installs
   them with ``host_install.py``, one set per device call.

Usage::

    python benchmarks/gpu/carrier.py                       # the GPU host: cp312, torch 2.11.0 (default)
    python benchmarks/gpu/carrier.py --resolve-only        # print the selection, download nothing
    python benchmarks/gpu/carrier.py --python-version 3.11 --torch 2.14.1 --torchvision 0.29.1 \\
        --out .gpu_wheels/cp311                            # the same set for this CPU machine (bare-host rehearsal)

Outputs: ``OUT/chunks/NN/`` (what each device call carries), ``OUT/selection.json`` (every package, its
size and why it is there or not), ``OUT/wheels/`` (the wheels), ``OUT/resolve/`` (pip's reports).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.gpu import chunks  # noqa: E402

#: What the trainer needs, as pip requirements, with why. Everything else is their resolved closure.
ROOTS: dict[str, str] = {
    "verl[verl-core]==0.9.1": "the trainer, with verl's runtime extra (Ray, TransferQueue, uvicorn, fastapi, pyzmq, "
    "qwen-vl-utils, tensordict, transformers within verl's range, hydra/omegaconf, ...)",
}
#: The torchvision that pairs with each host torch (verl 0.9.1's GPU extras pin 2.11.0 with 0.26.0).
#: qwen-vl-utils imports torchvision for every image row, and a torchvision built for another torch
#: does not import.
TORCHVISION_FOR_TORCH = {"2.11.0": "0.26.0", "2.14.1": "0.29.1"}

#: Packages in verl's closure that the recipe's trainer never imports (logger backends not selected,
#: video decoding, test runners, profilers). Leaving them out saves about a third of the transfers; the
#: bare-host rehearsal (docs/gpu_run.md) runs the trainer with exactly the remaining set.
EXCLUDED: dict[str, str] = {
    "wandb": "logger backend; verl imports it only when trainer.logger lists wandb",
    "tensorboard": "logger backend; verl imports it only when trainer.logger lists tensorboard",
    "torchcodec": "video decoding (no video in the guard's data); needs FFmpeg libraries to import at all",
    "av": "video decoding in qwen-vl-utils, imported only for video inputs",
    "pytest": "test runner listed in verl[verl-core]",
    "pytest-asyncio": "test runner plugin listed in verl[verl-core]",
    "pytest-rerunfailures": "test runner plugin listed in verl[verl-core]",
    "py-spy": "Ray's optional stack-sampling profiler",
}

DEFAULT_OUT = REPO_ROOT / ".gpu_wheels"
#: What the GPU host is known to have (versions read on it).
DEFAULT_HOST_PACKAGES = Path(__file__).resolve().parent / "host_packages.txt"
#: Newest glibc the host's wheels may need: torch 2.11's own wheels are manylinux_2_28.
DEFAULT_GLIBC_MINOR = 28


class CarrierError(RuntimeError):
    """The resolution or the selection is not what the host can use; the message says why."""


# ----------------------------------------------------------------------------------------- pip


def platform_args(python_version: str, glibc_minor: int) -> list[str]:
    """pip options for CPython ``python_version`` on manylinux x86_64, binary wheels only."""
    abi = "cp" + python_version.replace(".", "")
    args = ["--only-binary", ":all:", "--python-version", python_version, "--implementation", "cp"]
    for tag in (abi, "abi3", "none"):
        args += ["--abi", tag]
    # pip does not widen an explicit --platform to older manylinux tags: list every glibc.
    for minor in range(glibc_minor, 4, -1):
        args += ["--platform", f"manylinux_2_{minor}_x86_64"]
    for legacy in ("manylinux2014", "manylinux2010", "manylinux1"):
        args += ["--platform", f"{legacy}_x86_64"]
    return args


def pip(*args: str, show: bool = False) -> None:
    """Run pip with this interpreter; ``show`` lets its output (download progress) through."""
    command = [sys.executable, "-m", "pip", *args]
    if show:
        if subprocess.run(command).returncode != 0:
            raise CarrierError(f"pip {args[0]} failed (its output is above)")
        return
    proc = subprocess.run([*command[:3], "--quiet", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        noise = "is ignored: it is neither a file nor a directory"
        err = "\n".join(line for line in proc.stderr.splitlines() if noise not in line)
        raise CarrierError(f"pip {args[0]} failed (exit {proc.returncode}):\n{err[-3000:]}")


def resolve(requirements: Sequence[str], report: Path, *, target_args: Sequence[str] = (), find_links: Optional[Path] = None) -> dict:
    """pip's install report for ``requirements`` (nothing is installed)."""
    report.parent.mkdir(parents=True, exist_ok=True)
    args = ["install", "--dry-run", "--ignore-installed", "--report", str(report)]
    if find_links is not None:
        args += ["--find-links", str(find_links)]
    with tempfile.TemporaryDirectory(prefix="carrier-target-") as scratch:
        if target_args:  # pip takes platform options only with --target (nothing is written there)
            args += ["--target", scratch, *target_args]
        pip(*args, *requirements)
    return json.loads(report.read_text())


# ----------------------------------------------------------------------------------------- graph


@dataclass
class Package:
    name: str  # canonical
    version: str
    url: str
    sha256: Optional[str]
    requires: list[Requirement]

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")


def packages_of(report: dict) -> dict[str, Package]:
    out = {}
    for item in report["install"]:
        meta = item["metadata"]
        info = item.get("download_info", {})
        hashes = info.get("archive_info", {}).get("hashes", {})
        out[canonicalize_name(meta["name"])] = Package(
            name=canonicalize_name(meta["name"]),
            version=meta["version"],
            url=info.get("url", ""),
            sha256=hashes.get("sha256"),
            requires=[Requirement(r) for r in meta.get("requires_dist") or []],
        )
    return out


def marker_environment(python_version: str) -> dict[str, str]:
    """Marker values of the target interpreter (pip evaluates markers for the running one)."""
    env = dict(default_environment())
    env.update(
        python_version=python_version,
        python_full_version=f"{python_version}.0",
        implementation_version=f"{python_version}.0",
        implementation_name="cpython",
        platform_python_implementation="CPython",
        sys_platform="linux",
        platform_system="Linux",
        platform_machine="x86_64",
        os_name="posix",
    )
    return env


@dataclass
class Closure:
    #: canonical name -> the chain of requirement strings that brought it in (root first).
    via: dict[str, list[str]] = field(default_factory=dict)
    #: canonical name -> every version specifier the closure puts on it.
    specifiers: dict[str, list[SpecifierSet]] = field(default_factory=dict)

    def accepts(self, name: str, version: str) -> bool:
        """Whether ``version`` of ``name`` satisfies every requirement of the closure on it."""
        return all(spec.contains(Version(version), prereleases=True) for spec in self.specifiers.get(name, []))


def closure(
    packages: dict[str, Package], roots: Iterable[Requirement], env: dict[str, str], *, stop: Iterable[str] = ()
) -> Closure:
    """Everything ``roots`` need on the target, following extras and markers, not entering ``stop``."""
    stop = {canonicalize_name(s) for s in stop}
    result = Closure()
    seen: set[tuple[str, str]] = set()
    queue: list[tuple[Requirement, list[str]]] = [(r, []) for r in roots]
    while queue:
        req, chain = queue.pop(0)
        name = canonicalize_name(req.name)
        result.specifiers.setdefault(name, []).append(req.specifier)
        if name in stop:
            continue
        if name not in packages:
            raise CarrierError(
                f"{' -> '.join(chain + [str(req)])}: needed on Python {env['python_version']} but pip did not "
                "resolve it (a marker pip evaluated for this interpreter, not the target's); add it as a root"
            )
        result.via.setdefault(name, chain + [str(req)])
        for extra in ("", *sorted(req.extras)):
            if (name, extra) in seen:
                continue
            seen.add((name, extra))
            for dep in packages[name].requires:
                if dep.marker is not None and not dep.marker.evaluate({**env, "extra": extra}):
                    continue
                queue.append((dep, result.via[name]))
    return result


# ----------------------------------------------------------------------------------------- selection


def read_host_packages(path: Path) -> dict[str, str]:
    """``name==version`` lines (``#`` comments allowed) -> {canonical name: version}."""
    host: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not name.strip() or not version.strip():
            raise CarrierError(f"{path}:{number}: expected name==version, got {raw.strip()!r}")
        host[canonicalize_name(name.strip())] = version.strip()
    if "torch" not in host:
        raise CarrierError(f"{path}: no torch==VERSION line (the resolution is pinned to the host's torch)")
    return host


@dataclass
class Selection:
    python_version: str
    roots: list[str]
    selected: dict[str, Package]
    #: What the host has and the set may use: torch and its requirements, and each listed host package
    #: whose version satisfies every requirement of the set on it (name -> host version).
    host_provided: dict[str, str]
    #: Listed host packages the set cannot use (wrong version): they are carried and shadow the host's.
    host_shadowed: dict[str, str]
    excluded: dict[str, str]  # name -> reason (the package itself, or what only it needed)
    via: dict[str, list[str]]

    def to_dict(self, sizes: Optional[dict[str, int]] = None) -> dict[str, Any]:
        sizes = sizes or {}
        return {
            "python_version": self.python_version,
            "roots": self.roots,
            "selected": [
                {
                    "name": p.name,
                    "version": p.version,
                    "file": p.filename,
                    "bytes": sizes.get(p.name),
                    "via": " -> ".join(self.via.get(p.name, [])),
                }
                for p in sorted(self.selected.values(), key=lambda p: p.name)
            ],
            "host_provided": dict(sorted(self.host_provided.items())),
            "host_shadowed": dict(sorted(self.host_shadowed.items())),
            "excluded": dict(sorted(self.excluded.items())),
        }


def select(packages: dict[str, Package], roots: Sequence[str], *, host: dict[str, str], python_version: str) -> Selection:
    """Split pip's resolution into what the host gets, what it has, and what is left out (with why)."""
    env = marker_environment(python_version)
    torch = closure(packages, [Requirement(f"torch=={host['torch']}")], env)
    root_reqs = [Requirement(r) for r in roots]
    everything = closure(packages, root_reqs, env, stop=torch.via)
    provided = {name: packages[name].version for name in torch.via}
    shadowed = {}
    for name, version in host.items():
        if name in provided or name not in everything.via:
            continue
        if everything.accepts(name, version):
            provided[name] = version
        else:
            shadowed[name] = f"host has {version}; the set needs {packages[name].version}"
    wanted = closure(packages, root_reqs, env, stop=[*provided, *EXCLUDED])
    excluded: dict[str, str] = {}
    for name in everything.via:
        if name in wanted.via or name in provided:
            continue
        if name in EXCLUDED:
            excluded[name] = EXCLUDED[name]
        else:
            excluded[name] = "needed only by what the host has or what is left out"
    return Selection(
        python_version=python_version,
        roots=list(roots),
        selected={n: packages[n] for n in wanted.via},
        host_provided=provided,
        host_shadowed=shadowed,
        excluded=excluded,
        via=wanted.via,
    )


def check_agreement(reference: dict[str, Package], target: dict[str, Package], names: Iterable[str]) -> list[str]:
    """Versions the two resolutions disagree on, among ``names`` present in both."""
    return [
        f"{n}: {reference[n].version} (this interpreter) vs {target[n].version} (target)"
        for n in sorted(names)
        if n in reference and n in target and reference[n].version != target[n].version
    ]


# ----------------------------------------------------------------------------------------- steps


def build_source_only(native: dict[str, Package], built: Path) -> list[Path]:
    """Build the packages the index has only as source into pure-Python wheels under ``built``."""
    built.mkdir(parents=True, exist_ok=True)
    wheels = []
    for package in native.values():
        if package.is_wheel or not package.url:
            continue
        existing = [w for w in built.glob("*.whl") if canonicalize_name(parse_wheel_filename(w.name)[0]) == package.name]
        if not existing:
            pip("wheel", "--no-deps", "--no-binary", package.name, "-w", str(built), f"{package.name}=={package.version}")
            existing = [w for w in built.glob("*.whl") if canonicalize_name(parse_wheel_filename(w.name)[0]) == package.name]
        for wheel in existing:
            tags = parse_wheel_filename(wheel.name)[3]
            if any(tag.platform != "any" or tag.abi != "none" for tag in tags):
                raise CarrierError(f"{wheel.name}: {package.name} has only a source release and builds a platform wheel; the host cannot use it")
            wheels.append(wheel)
    return wheels


def download(selection: Selection, wheels_dir: Path, target_args: Sequence[str], built: Sequence[Path]) -> dict[str, int]:
    """Fetch the selected wheels (hash-checked by pip) into ``wheels_dir``; returns bytes per package."""
    shutil.rmtree(wheels_dir, ignore_errors=True)
    wheels_dir.mkdir(parents=True)
    local = {canonicalize_name(parse_wheel_filename(w.name)[0]): w for w in built}
    lines = []
    for package in selection.selected.values():
        if package.name in local:
            shutil.copy2(local[package.name], wheels_dir / local[package.name].name)
        elif package.sha256 is None:
            raise CarrierError(f"{package.name}=={package.version}: the index gave no sha256 ({package.url})")
        else:
            lines.append(f"{package.name}=={package.version} --hash=sha256:{package.sha256}")
    if lines:
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
            handle.write("\n".join(lines) + "\n")
        try:
            pip("download", "--no-deps", "--require-hashes", "-d", str(wheels_dir), *target_args, "-r", handle.name, show=True)
        finally:
            os.unlink(handle.name)
    sizes = {}
    for wheel in wheels_dir.glob("*.whl"):
        sizes[canonicalize_name(parse_wheel_filename(wheel.name)[0])] = wheel.stat().st_size
    missing = sorted(set(selection.selected) - set(sizes))
    if missing:
        raise CarrierError(f"not downloaded: {', '.join(missing)}")
    return sizes


def prepare(args: argparse.Namespace) -> int:
    out: Path = args.out
    host = read_host_packages(args.host_packages)
    torchvision = args.torchvision or host.get("torchvision") or TORCHVISION_FOR_TORCH.get(host["torch"])
    if torchvision is None:
        raise CarrierError(f"no known torchvision for torch {host['torch']}: pass --torchvision")
    roots = [*ROOTS, f"torchvision=={torchvision}"]
    requirements = [*roots, f"torch=={host['torch']}"]
    target_args = platform_args(args.python_version, args.glibc_minor)

    native_report, target_report = out / "resolve" / "native.json", out / "resolve" / "target.json"
    key = json.dumps({"requirements": requirements, "target": target_args})
    key_file = out / "resolve" / "key.json"
    reuse = args.reuse_resolution and key_file.is_file() and key_file.read_text() == key and target_report.is_file()
    if reuse:
        print(f"reusing pip's reports under {out / 'resolve'} (--reuse-resolution)", flush=True)
    else:
        print(f"resolving for this interpreter (finds source-only packages): {' '.join(requirements)}", flush=True)
        key_file.unlink(missing_ok=True)
        resolve(requirements, native_report)
    native = packages_of(json.loads(native_report.read_text()))
    built = build_source_only(native, out / "built")
    if built:
        print(f"built pure-Python wheels of source-only packages: {', '.join(w.name for w in built)}", flush=True)
    if not reuse:
        print(f"resolving for CPython {args.python_version} manylinux x86_64, binary wheels only", flush=True)
        resolve(requirements, target_report, target_args=target_args, find_links=out / "built")
        key_file.write_text(key)
    target = packages_of(json.loads(target_report.read_text()))
    selection = select(target, roots, host=host, python_version=args.python_version)
    drift = check_agreement(native, target, selection.selected)
    if drift and not args.allow_version_drift:
        raise CarrierError(
            "the two resolutions disagree (pip backtracked for the target; a source-only package?):\n  "
            + "\n  ".join(drift)
        )

    sizes: dict[str, int] = {}
    if not args.resolve_only:
        print(f"downloading {len(selection.selected)} wheels", flush=True)
        sizes = download(selection, out / "wheels", target_args, built)
    summary = selection.to_dict(sizes)
    _write_json(out / "selection.json", summary)

    width = max(len(p["name"]) for p in summary["selected"])
    for entry in summary["selected"]:
        size = f"{entry['bytes'] / chunks.MIB:8.2f} MiB" if entry["bytes"] else ""
        print(f"  {entry['name']:{width}s} {entry['version']:16s} {size}")
    print(f"host provides {len(summary['host_provided'])} (torch, what it requires, and usable listed packages)")
    for name, why in summary["host_shadowed"].items():
        print(f"  carried although the host has it: {name} ({why})")
    for name, why in summary["excluded"].items():
        print(f"  left out: {name}: {why}")
    if args.resolve_only:
        print(f"{len(selection.selected)} wheels selected (--resolve-only: nothing downloaded)")
        return 0

    manifest = chunks.split(
        sorted((out / "wheels").glob("*.whl")),
        out / "chunks",
        chunk_bytes=int(args.chunk_mib * chunks.MIB),
        info={
            "python_version": args.python_version,
            "host_packages": host,
            "roots": roots,
            "excluded": sorted(EXCLUDED),
            "pip": subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, text=True).stdout.strip(),
        },
    )
    total = manifest.total_bytes / chunks.MIB
    print(
        f"{len(manifest.wheels)} wheels, {total:.1f} MiB in all -> {len(manifest.chunks)} chunk sets of at most "
        f"{args.chunk_mib:g} MiB under {out / 'chunks'} (one device call each)"
    )
    return 0


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="carrier.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="ignored output folder (default .gpu_wheels)")
    parser.add_argument("--python-version", default="3.12", help="the host's Python (default 3.12)")
    parser.add_argument(
        "--host-packages",
        type=Path,
        default=DEFAULT_HOST_PACKAGES,
        help=f"name==version lines of what the host has, torch included (default {DEFAULT_HOST_PACKAGES.relative_to(REPO_ROOT)})",
    )
    parser.add_argument("--torchvision", default=None, help="torchvision to carry (default: the host's, else the one paired with its torch)")
    parser.add_argument("--glibc-minor", type=int, default=DEFAULT_GLIBC_MINOR, help="newest manylinux_2_N the host runs (default 28)")
    parser.add_argument("--chunk-mib", type=float, default=chunks.DEFAULT_CHUNK_BYTES / chunks.MIB, help="largest chunk in MiB (default 60)")
    parser.add_argument("--resolve-only", action="store_true", help="resolve and print the selection; download nothing")
    parser.add_argument("--reuse-resolution", action="store_true", help="reuse pip's reports of an earlier run with the same inputs")
    parser.add_argument("--allow-version-drift", action="store_true", help="accept versions that differ between the two resolutions")
    args = parser.parse_args(argv)
    try:
        return prepare(args)
    except (CarrierError, chunks.ChunkError) as err:
        print(f"carrier.py: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
