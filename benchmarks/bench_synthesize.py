"""Throughput of ``guardreasoner-vl synthesize`` against a local server that answers after 100 ms.

For each concurrency c the synthesizer (real ``openai`` client, validation, journal with fsync)
sends N text records to the bundled fake chat-completions server, run in its own process so it
does not share the client's interpreter lock. Efficiency = ideal time (delay × N / c) over the
measured wall time; the goal is ≥ 80% at c = 64. Concurrency 1 uses fewer records (it would take
200 s for 2,000) — the figure is per request, so this does not change it.

    python benchmarks/bench_synthesize.py                      # 2,000 records at 8 and 64, 100 at 1
    python benchmarks/bench_synthesize.py --json bench_synthesize.json

Prints one line per concurrency and writes JSON with counts, settings, versions and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from data_prep.record import GuardRecord  # noqa: E402
from data_prep.synthesize import SynthesisSettings, synthesize  # noqa: E402


def make_records(n: int) -> list[GuardRecord]:
    """Text records alternating labels and with/without a response (deterministic, no seed needed)."""
    return [
        GuardRecord(
            id=f"bench-{i:06d}", source="bench", request=f"Question {i}: how do I repot a cactus without getting hurt?",
            request_label="harmful" if i % 5 == 0 else "unharmful",
            response=None if i % 2 else "Wear thick gloves and wrap the cactus in folded newspaper.",
            response_label=None if i % 2 else "unharmful",
        )
        for i in range(n)
    ]


def start_server(delay: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "data_prep.synthesize.fake_server", "--delay", str(delay)],
        cwd=REPO, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))},
    )
    return proc, proc.stdout.readline().strip()


def measure(records: list[GuardRecord], concurrency: int, base_url: str, workdir: Path, backend: str) -> dict:
    out = workdir / f"out-c{concurrency}-{backend}.jsonl"
    settings = SynthesisSettings(base_url=base_url, concurrency=concurrency, timeout=30.0, http_backend=backend)
    cpu0, t0 = time.process_time(), time.perf_counter()
    summary = synthesize(records, output=out, settings=settings, api_key="bench")
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    if summary.done != len(records) or summary.requests != len(records):
        raise RuntimeError(f"c={concurrency}: expected {len(records)} done in as many requests, got {summary}")
    return {"concurrency": concurrency, "http_backend": backend, "records": len(records), "wall_s": round(wall, 3),
            "client_cpu_ms_per_request": round(1000 * cpu / len(records), 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=2000, help="records per run (default: 2000)")
    parser.add_argument("--records-c1", type=int, default=100, help="records at concurrency 1 (default: 100)")
    parser.add_argument("--delay", type=float, default=0.1, help="server answer delay in seconds (default: 0.1)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64], help="default: 1 8 64")
    parser.add_argument("--http-backend", nargs="+", default=["aiohttp", "httpx"], choices=("aiohttp", "httpx"),
                        help="transports to measure (default: aiohttp httpx; httpx only at the highest concurrency)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()

    import openai  # imported before timing: a one-off ~1-2 s that is not throughput

    server, base_url = start_server(args.delay)
    results = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            synthesize(make_records(4), output=Path(tmp) / "warmup.jsonl",
                       settings=SynthesisSettings(base_url=base_url), api_key="bench")
            runs = [(c, args.http_backend[0]) for c in args.concurrency]
            runs += [(max(args.concurrency), backend) for backend in args.http_backend[1:]]
            for c, backend in runs:
                n = args.records_c1 if c == 1 else args.records
                row = measure(make_records(n), c, base_url, Path(tmp), backend)
                row["ideal_s"] = round(args.delay * n / c, 3)
                row["efficiency"] = round(row["ideal_s"] / row["wall_s"], 3)
                results.append(row)
                print(f"{backend:>7} concurrency {c:>3}: {n:>5} records in {row['wall_s']:7.2f} s "
                      f"(ideal {row['ideal_s']:6.2f} s) -> efficiency {100 * row['efficiency']:5.1f}%, "
                      f"client CPU {row['client_cpu_ms_per_request']:.2f} ms/request", flush=True)
    finally:
        server.terminate()
        server.wait()
    report = {
        "benchmark": "synthesize",
        "server_delay_s": args.delay,
        "results": results,
        "goal": "efficiency >= 0.80 at concurrency 64",
        "versions": {"python": platform.python_version(), "openai": openai.__version__, "aiohttp": _version("aiohttp"),
                     "guardreasoner-vl": _version("guardreasoner-vl")},
        "device": {"machine": platform.machine(), "cpus": os.cpu_count(), "platform": platform.platform(),
                   "load_average_1m_at_end": round(os.getloadavg()[0], 2)},
    }
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def _version(name: str) -> str:
    try:
        return version(name)
    except Exception:
        return "not installed"


if __name__ == "__main__":
    sys.exit(main())
