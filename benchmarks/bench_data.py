"""Benchmark: RL parquet build throughput and peak memory, streaming writer vs a plain ``datasets`` build.

For each N (default 2,000 and 8,000) it builds RL parquet from N synthetic rows, each with a
512x512 PNG, twice, each build in a fresh subprocess (so peak RSS is that build's own):

- ``ours``: ``read_records`` → :func:`data_prep.writers.write_rl` (streaming, row groups, atomic);
- ``baseline``: ``datasets.Dataset.from_list(rows).map(shape).to_parquet(...)`` where ``shape``
  builds the same columns the way verl's ``examples/data_preprocess`` scripts do (PIL images in the
  row, encoded by ``datasets``).

Both start from the same records JSONL and write the same columns. The streaming writer validates
every image by decoding it and then stores the source bytes when nothing had to change; the plain
build re-encodes every image and materialises the whole dataset (an Arrow cache) before writing.
Goals: ours >= 2x the baseline's rows/s, and our peak RSS within 20% between N and 4N (flat memory). Images come from a pool of distinct synthetic pictures (rows
cycle through it) to keep the fixture's disk use small; every row is still decoded and written.

    python benchmarks/bench_data.py [--sizes 2000 8000] [--pool 256] [--json outputs/bench_data.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SEED = 0
IMAGE_SIZE = (512, 512)


def make_fixture(folder: Path, n: int, pool: int) -> Path:
    """A records JSONL of ``n`` rows (text-image, alternating labels) over ``pool`` distinct 512x512 PNGs."""
    import random

    from PIL import Image, ImageDraw

    from data_prep.record import GuardRecord
    from data_prep.records_io import write_records

    rng = random.Random(SEED)
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    for i in range(pool):
        image = Image.new("RGB", IMAGE_SIZE, tuple(rng.randrange(256) for _ in range(3)))
        draw = ImageDraw.Draw(image)
        for _ in range(12):
            x, y = rng.randrange(480), rng.randrange(480)
            draw.ellipse([x, y, x + rng.randrange(16, 200), y + rng.randrange(16, 200)],
                         fill=tuple(rng.randrange(256) for _ in range(3)))
        image.save(images / f"{i:04d}.png", compress_level=6)
    records = (
        GuardRecord(id=f"row-{i:06d}", source="bench", request=f"What is shown in picture {i}? " * 3,
                    request_label="harmful" if i % 2 else "unharmful",
                    response=None if i % 3 else "It shows shapes.", response_label="none" if i % 3 else "unharmful",
                    images=(str(images / f"{i % pool:04d}.png"),))
        for i in range(n)
    )
    path = folder / f"records-{n}.jsonl"
    write_records(records, path)
    return path


def run_ours(records_path: Path, out: Path) -> int:
    from data_prep.records_io import read_records
    from data_prep.writers import write_rl

    return write_rl(read_records(records_path), out).rows_out


def run_baseline(records_path: Path, out: Path) -> int:
    """The plain build, as verl's ``examples/data_preprocess`` scripts do it: rows in a list,
    ``map`` returns PIL images (``datasets`` encodes them), then ``to_parquet``."""
    import datasets
    from PIL import Image

    from data_prep.records_io import record_from_json
    from data_prep.transcript import record_messages
    from data_prep.writers import ABILITY, extra_info

    folder = records_path.parent
    rows = [json.loads(line) for line in open(records_path, encoding="utf-8")]

    def shape(row: dict, index: int) -> dict:
        record = record_from_json(row, folder=folder)
        return {
            "data_source": record.source,
            "prompt": record_messages(record),
            "images": [Image.open(path).convert("RGB") for path in record.images],
            "ability": ABILITY,
            "reward_model": {"style": "rule", "ground_truth": record.ground_truth},
            "extra_info": extra_info(record, index=index, split="train"),
        }

    dataset = datasets.Dataset.from_list(rows).map(
        shape, with_indices=True, remove_columns=list(rows[0]), cache_file_name=str(out.with_suffix(".arrow")),
    )
    dataset.to_parquet(str(out))
    return len(dataset)


def worker(kind: str, records_path: Path, out: Path) -> None:
    """One build in this (fresh) process; prints a JSON line with rows, seconds, peak RSS."""
    start = time.perf_counter()
    rows = (run_ours if kind == "ours" else run_baseline)(records_path, out)
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"kind": kind, "rows": rows, "seconds": seconds, "peak_rss_mib": peak_kib / 1024}))


def measure(kind: str, records_path: Path, out: Path) -> dict:
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run([sys.executable, __file__, "--worker", kind, "--records", str(records_path), "--out", str(out)],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} build failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["rows_per_s"] = result["rows"] / result["seconds"]
    result["output_mib"] = out.stat().st_size / 2**20
    return result


def versions() -> dict:
    import datasets
    import PIL
    import pyarrow

    return {"python": platform.python_version(), "pyarrow": pyarrow.__version__, "datasets": datasets.__version__,
            "pillow": PIL.__version__}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 8000], help="row counts (default: 2000 8000)")
    parser.add_argument("--pool", type=int, default=256, help="distinct images the rows cycle through (default: 256)")
    parser.add_argument("--json", type=Path, default=REPO / "outputs" / "bench_data.json", help="where to write results")
    parser.add_argument("--worker", choices=("ours", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--records", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.records, args.out)
        return 0

    results = []
    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        tmp = Path(tmp)
        for n in args.sizes:
            records = make_fixture(tmp, n, args.pool)
            for kind in ("ours", "baseline"):
                result = measure(kind, records, tmp / f"{kind}-{n}.parquet")
                result["n"] = n
                results.append(result)
                print(f"N={n:>6} {kind:<8} {result['rows_per_s']:8.1f} rows/s  {result['seconds']:7.2f} s  "
                      f"peak RSS {result['peak_rss_mib']:7.1f} MiB  output {result['output_mib']:.1f} MiB", flush=True)
    ours = {r["n"]: r for r in results if r["kind"] == "ours"}
    base = {r["n"]: r for r in results if r["kind"] == "baseline"}
    speedups = {n: ours[n]["rows_per_s"] / base[n]["rows_per_s"] for n in ours}
    small, large = min(ours), max(ours)
    rss_growth = ours[large]["peak_rss_mib"] / ours[small]["peak_rss_mib"] - 1
    base_growth = base[large]["peak_rss_mib"] / base[small]["peak_rss_mib"] - 1
    for n, s in speedups.items():
        print(f"speed-up at N={n}: {s:.2f}x (goal >= 2x)")
    print(f"peak RSS growth N={small} -> N={large}: ours {rss_growth:+.1%} (goal within 20%), baseline {base_growth:+.1%}")
    summary = {"seed": SEED, "image_size": IMAGE_SIZE, "image_pool": args.pool, "results": results,
               "speedup": speedups, "rss_growth_ours": rss_growth, "rss_growth_baseline": base_growth,
               "device": f"CPU ({os.cpu_count()} cores visible)", "versions": versions()}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
