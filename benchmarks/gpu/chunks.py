"""Cut a wheel set into numbered chunks with a sha256 manifest, and put it back together, verified.

Why: files reach the GPU host in transfers of at most 64 MiB, and the wheels the trainer needs (Ray alone
is about 79 MB) are larger than that. So the carrier (``carrier.py``, on a machine with a package
index) cuts the concatenated wheels into chunks of at most 60 MiB, one chunk per device call, and the
host puts each wheel back together as soon as all of its bytes have arrived, checking every chunk and
every wheel against the manifest. A corrupted or truncated chunk is reported by name with the set to
carry again; nothing unverified is ever installed.

Standard library only: the host runs this before anything is installed.

Layout (``ROOT`` is ``.gpu_wheels/chunks`` by default)::

    ROOT/01/chunk-01.bin  ROOT/01/manifest.json     <- one folder per device call ("chunk set")
    ROOT/02/chunk-02.bin  ROOT/02/manifest.json     <- every set carries the same small manifest
    ...

Usage::

    python benchmarks/gpu/chunks.py split  --wheels .gpu_wheels/wheels --out .gpu_wheels/chunks --chunk-mib 60
    python benchmarks/gpu/chunks.py assemble --chunks .gpu_wheels/chunks --dest .gpu_wheels/host --upto 2
    python benchmarks/gpu/chunks.py verify --chunks .gpu_wheels/chunks
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

MIB = 1 << 20
#: Largest chunk by default: a device call carries at most 64 MiB, and the manifest and the working
#: tree's own files travel too.
DEFAULT_CHUNK_BYTES = 60 * MIB
MANIFEST = "manifest.json"
FORMAT = 1
_BLOCK = 4 * MIB


class ChunkError(RuntimeError):
    """A chunk or a wheel is missing or does not match the manifest; the message says what to carry again."""


@dataclass(frozen=True)
class Chunk:
    index: int
    size: int
    sha256: str

    @property
    def folder(self) -> str:
        return f"{self.index:02d}"

    @property
    def file(self) -> str:
        return f"{self.folder}/chunk-{self.index:02d}.bin"


@dataclass(frozen=True)
class Wheel:
    file: str
    size: int
    sha256: str
    #: Byte offset of the wheel in the concatenation of all wheels (chunk 1 starts at 0).
    offset: int


@dataclass
class Manifest:
    chunk_bytes: int
    chunks: list[Chunk]
    wheels: list[Wheel]
    #: Free-form provenance (what was resolved, for which interpreter, what was left out and why).
    info: dict[str, Any] = field(default_factory=dict)
    format: int = FORMAT

    @property
    def total_bytes(self) -> int:
        return sum(w.size for w in self.wheels)

    def chunks_of(self, wheel: Wheel) -> range:
        """1-based indices of the chunks holding the bytes of ``wheel``."""
        first = wheel.offset // self.chunk_bytes + 1
        last = (wheel.offset + max(wheel.size, 1) - 1) // self.chunk_bytes + 1
        return range(first, last + 1)

    def to_json(self) -> str:
        data = asdict(self)
        data["total_bytes"] = self.total_bytes
        return json.dumps(data, indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "manifest") -> "Manifest":
        try:
            data = json.loads(text)
            if data.get("format") != FORMAT:
                raise ChunkError(f"{source}: manifest format {data.get('format')!r}, this script reads {FORMAT}")
            manifest = cls(
                chunk_bytes=int(data["chunk_bytes"]),
                chunks=[Chunk(int(c["index"]), int(c["size"]), str(c["sha256"])) for c in data["chunks"]],
                wheels=[Wheel(str(w["file"]), int(w["size"]), str(w["sha256"]), int(w["offset"])) for w in data["wheels"]],
                info=dict(data.get("info") or {}),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ChunkError(f"{source}: not a chunk manifest ({type(err).__name__}: {err})") from None
        if [c.index for c in manifest.chunks] != list(range(1, len(manifest.chunks) + 1)):
            raise ChunkError(f"{source}: chunk indices are not 1..{len(manifest.chunks)}")
        if sum(c.size for c in manifest.chunks) != manifest.total_bytes:
            raise ChunkError(f"{source}: chunk sizes do not add up to the wheels' {manifest.total_bytes} bytes")
        return manifest


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------- split


def split(
    wheels: Sequence[Path], out: Path, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES, info: Optional[dict] = None
) -> Manifest:
    """Concatenate ``wheels`` (in this order) and cut the stream into chunks of ``chunk_bytes``.

    Writes ``out/NN/chunk-NN.bin`` and ``out/NN/manifest.json``; ``out`` is replaced atomically (built
    as ``out.incomplete`` and renamed), so an interrupted split never leaves a chunk set that looks
    finished.
    """
    if chunk_bytes < 1:
        raise ValueError(f"chunk_bytes must be positive, got {chunk_bytes}")
    names = [Path(w).name for w in wheels]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"two wheels with the same file name: {', '.join(duplicates)}")
    if not wheels:
        raise ValueError("no wheels to split")
    empty = [str(w) for w in wheels if Path(w).stat().st_size == 0]
    if empty:
        raise ValueError(f"empty file(s), not wheels: {', '.join(empty)}")
    work = out.with_name(out.name + ".incomplete")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    entries: list[Wheel] = []
    chunks: list[Chunk] = []
    offset = 0
    current = None  # (index, handle, digest, size)

    def open_chunk(index: int):
        folder = work / f"{index:02d}"
        folder.mkdir()
        return (index, open(folder / f"chunk-{index:02d}.bin", "wb"), hashlib.sha256(), 0)

    def close_chunk(state) -> None:
        index, handle, digest, size = state
        handle.close()
        chunks.append(Chunk(index, size, digest.hexdigest()))

    try:
        for path in wheels:
            path = Path(path)
            wheel_digest = hashlib.sha256()
            size = 0
            with open(path, "rb") as src:
                for block in iter(lambda: src.read(_BLOCK), b""):
                    wheel_digest.update(block)
                    size += len(block)
                    view = memoryview(block)
                    while view:
                        if current is None or current[3] == chunk_bytes:
                            if current is not None:
                                close_chunk(current)
                            current = open_chunk(len(chunks) + 1)
                        index, handle, digest, used = current
                        take = view[: chunk_bytes - used]
                        handle.write(take)
                        digest.update(take)
                        current = (index, handle, digest, used + len(take))
                        view = view[len(take) :]
            entries.append(Wheel(path.name, size, wheel_digest.hexdigest(), offset))
            offset += size
        if current is not None:
            close_chunk(current)
            current = None
    finally:
        if current is not None:
            current[1].close()

    manifest = Manifest(chunk_bytes=chunk_bytes, chunks=chunks, wheels=entries, info=dict(info or {}))
    text = manifest.to_json()
    for chunk in chunks:
        (work / chunk.folder / MANIFEST).write_text(text)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(work, out)
    return manifest


# ----------------------------------------------------------------------------------------- assemble


@dataclass
class AssembleReport:
    manifest: Manifest
    #: Chunk indices present and verified.
    verified: list[int]
    #: Wheels written to (or already verified in) the destination.
    ready: list[Path]
    #: Wheels still waiting for chunks.
    waiting: list[str]

    @property
    def complete(self) -> bool:
        return not self.waiting


def load_manifest(chunks_root: Path) -> Manifest:
    """The manifest shared by every chunk set present under ``chunks_root`` (they must all agree)."""
    found = sorted(chunks_root.glob(f"*/{MANIFEST}"))
    if not found:
        raise ChunkError(f"no chunk set under {chunks_root} (expected {chunks_root}/01/{MANIFEST})")
    texts = {path: path.read_text() for path in found}
    first = found[0]
    for path, text in texts.items():
        if text != texts[first]:
            raise ChunkError(
                f"{path} differs from {first}: the chunk sets come from two different carrier runs; "
                "carry every set of one run"
            )
    return Manifest.from_json(texts[first], source=str(first))


def verify_chunk(chunks_root: Path, chunk: Chunk) -> None:
    """Raise :class:`ChunkError` unless chunk ``chunk.index`` is present with the manifest's size and sha256."""
    path = chunks_root / chunk.file
    if not path.is_file():
        raise ChunkError(f"chunk set {chunk.folder} is missing ({path}): carry it (and run this step) again")
    size = path.stat().st_size
    if size != chunk.size:
        raise ChunkError(
            f"chunk {path} has {size} bytes, the manifest says {chunk.size}: it is truncated or corrupt; "
            f"carry set {chunk.folder} again"
        )
    digest = sha256_file(path)
    if digest != chunk.sha256:
        raise ChunkError(
            f"chunk {path} has sha256 {digest}, the manifest says {chunk.sha256}: it is corrupt; "
            f"carry set {chunk.folder} again"
        )


def _read_range(chunks_root: Path, manifest: Manifest, start: int, length: int) -> Iterable[bytes]:
    """The bytes ``[start, start + length)`` of the concatenated stream, read from the chunk files."""
    end = start + length
    position = start
    while position < end:
        index = position // manifest.chunk_bytes + 1
        chunk = manifest.chunks[index - 1]
        within = position - (index - 1) * manifest.chunk_bytes
        take = min(end - position, chunk.size - within)
        with open(chunks_root / chunk.file, "rb") as handle:
            handle.seek(within)
            remaining = take
            while remaining:
                block = handle.read(min(_BLOCK, remaining))
                if not block:
                    raise ChunkError(f"chunk {chunks_root / chunk.file} ended early")
                remaining -= len(block)
                yield block
        position += take


def assemble(chunks_root: Path, dest: Path, *, upto: Optional[int] = None) -> AssembleReport:
    """Verify chunk sets ``1..upto`` (all by default) and write every wheel whose bytes they hold.

    A wheel already in ``dest`` with the right sha256 is kept (reruns are cheap); every written wheel
    is checked against the manifest before it is renamed into place.
    """
    manifest = load_manifest(chunks_root)
    last = len(manifest.chunks)
    upto = last if upto is None else upto
    if not 1 <= upto <= last:
        raise ChunkError(f"chunk set {upto} does not exist: this manifest has sets 1..{last}")
    for chunk in manifest.chunks[:upto]:
        verify_chunk(chunks_root, chunk)
    dest.mkdir(parents=True, exist_ok=True)
    ready: list[Path] = []
    waiting: list[str] = []
    for wheel in manifest.wheels:
        if max(manifest.chunks_of(wheel)) > upto:
            waiting.append(wheel.file)
            continue
        target = dest / wheel.file
        if target.is_file() and target.stat().st_size == wheel.size and sha256_file(target) == wheel.sha256:
            ready.append(target)
            continue
        tmp = dest / (wheel.file + ".part")
        digest = hashlib.sha256()
        with open(tmp, "wb") as handle:
            for block in _read_range(chunks_root, manifest, wheel.offset, wheel.size):
                digest.update(block)
                handle.write(block)
        if digest.hexdigest() != wheel.sha256:
            tmp.unlink()
            sets = ", ".join(f"{i:02d}" for i in manifest.chunks_of(wheel))
            raise ChunkError(f"{wheel.file} reassembled with sha256 {digest.hexdigest()}, expected {wheel.sha256}; carry sets {sets} again")
        os.replace(tmp, target)
        ready.append(target)
    return AssembleReport(manifest=manifest, verified=list(range(1, upto + 1)), ready=ready, waiting=waiting)


# ----------------------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chunks.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_split = sub.add_parser("split", help="cut the wheels of a folder into chunk sets with a manifest")
    p_split.add_argument("--wheels", type=Path, required=True, help="folder of .whl files (all of them are taken)")
    p_split.add_argument("--out", type=Path, required=True, help="chunk folder to (re)create")
    p_split.add_argument("--chunk-mib", type=float, default=DEFAULT_CHUNK_BYTES / MIB, help="largest chunk in MiB (default 60)")
    p_asm = sub.add_parser("assemble", help="verify chunk sets 1..N and write the wheels they complete")
    p_asm.add_argument("--chunks", type=Path, required=True, help="chunk folder (holds 01/, 02/, ...)")
    p_asm.add_argument("--dest", type=Path, required=True, help="folder for the reassembled wheels")
    p_asm.add_argument("--upto", type=int, default=None, help="last chunk set that has arrived (default: all)")
    p_ver = sub.add_parser("verify", help="check every chunk set present against the manifest")
    p_ver.add_argument("--chunks", type=Path, required=True)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "split":
            wheels = sorted(args.wheels.glob("*.whl"))
            manifest = split(wheels, args.out, chunk_bytes=int(args.chunk_mib * MIB))
            print(f"{len(manifest.wheels)} wheels, {manifest.total_bytes / MIB:.1f} MiB -> {len(manifest.chunks)} chunk sets in {args.out}")
        elif args.command == "assemble":
            report = assemble(args.chunks, args.dest, upto=args.upto)
            print(
                f"chunk sets {report.verified[0]:02d}..{report.verified[-1]:02d} of {len(report.manifest.chunks):02d} verified; "
                f"{len(report.ready)} wheels ready in {args.dest}, {len(report.waiting)} waiting for later sets"
            )
        else:
            manifest = load_manifest(args.chunks)
            present = [c for c in manifest.chunks if (args.chunks / c.file).exists()]
            for chunk in present:
                verify_chunk(args.chunks, chunk)
            print(f"{len(present)} of {len(manifest.chunks)} chunk sets present, all verified")
    except ChunkError as err:
        print(f"chunks.py: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
