"""Run one command and measure it from outside: wall time, host memory of its process tree, GPU memory.

verl reports the actor's own peak accelerator memory, but not the memory of the rollout server, the
driver, Ray's daemons or the TransferQueue actors, and no host memory of the job as a whole. A
sampling thread here reads, about once a second:

- the host memory of the command and every process below it (Ray starts its daemons and workers as
  children of the driver): the sum of their RSS, and the sum of their PSS (shared pages divided among
  the processes that map them, so Ray's shared object store counts once: the better total);
- the memory in use on the GPU (all processes), through NVML (``pynvml``) or ``nvidia-smi``;
- every 50 ms, new lines of the files it watches (verl's file logger writes one unbuffered line per
  step), with the time each line appeared: the R-SFT trainer logs no step time, so step times are
  read off these.

The full output of the command goes to a log file; only the lines ``echo`` accepts are shown.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

GIB = float(1 << 30)
#: How often watched files are read (the resolution of step times taken from them).
WATCH_INTERVAL = 0.05


@dataclass
class Sample:
    peak_host_pss: int = 0
    peak_host_rss: int = 0
    peak_gpu_used_bytes: Optional[int] = None


@dataclass
class RunResult:
    command: list[str]
    returncode: int
    wall_s: float
    #: Host memory of the process tree at its highest: PSS summed (shared pages counted once) and RSS
    #: summed (shared pages counted in every process that maps them).
    peak_host_pss_gib: float
    peak_host_rss_gib: float
    #: Memory in use on the GPU at its highest (every process), or None without a GPU.
    peak_gpu_used_gib: Optional[float]
    log: Path
    #: For each watched file: (seconds since the start, parsed JSON line) in arrival order.
    lines: dict[str, list[tuple[float, dict]]] = field(default_factory=dict)

    def tail(self, chars: int = 3000) -> str:
        text = self.log.read_text(errors="replace") if self.log.is_file() else ""
        return text[-chars:]


def _tree_memory(root) -> tuple[int, int]:
    """(PSS, RSS) summed over ``root`` and its descendants; PSS falls back to RSS where unreadable."""
    import psutil

    pss = rss = 0
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0, 0
    for process in processes:
        try:
            try:
                info = process.memory_full_info()
                pss += getattr(info, "pss", info.rss)
                rss += info.rss
            except (psutil.AccessDenied, AttributeError):
                value = process.memory_info().rss
                pss += value
                rss += value
        except psutil.Error:
            continue
    return pss, rss


def gpu_used_reader() -> Optional[Callable[[], Optional[int]]]:
    """A function returning the bytes in use on all visible GPUs, or None when there is no GPU."""
    try:
        import pynvml

        pynvml.nvmlInit()
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        if handles:
            return lambda: sum(int(pynvml.nvmlDeviceGetMemoryInfo(h).used) for h in handles)
    except Exception:  # noqa: BLE001 - no NVML: try nvidia-smi
        pass
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None

    def read() -> Optional[int]:
        proc = subprocess.run(
            [smi, "--query-gpu=memory.used", "--format=csv,noheader,nounits"], capture_output=True, text=True
        )
        if proc.returncode != 0:
            return None
        return sum(int(v) for v in proc.stdout.split()) * (1 << 20)

    return read if read() is not None else None


class _Watcher:
    def __init__(self, paths: Sequence[Path], start: float) -> None:
        self.start = start
        self.offsets = {str(p): 0 for p in paths}
        self.partial = {str(p): "" for p in paths}
        self.lines: dict[str, list[tuple[float, dict]]] = {str(p): [] for p in paths}

    def poll(self) -> None:
        now = time.monotonic() - self.start
        for name in self.offsets:
            path = Path(name)
            if not path.is_file():
                continue
            size = path.stat().st_size
            if size < self.offsets[name]:  # truncated (a new logger opened it): read again from 0
                self.offsets[name], self.partial[name] = 0, ""
            if size == self.offsets[name]:
                continue
            with open(path, "rb") as handle:
                handle.seek(self.offsets[name])
                chunk = handle.read(size - self.offsets[name])
            self.offsets[name] = size
            text = self.partial[name] + chunk.decode(errors="replace")
            *complete, self.partial[name] = text.split("\n")
            for line in complete:
                if line.strip():
                    try:
                        self.lines[name].append((now, json.loads(line)))
                    except json.JSONDecodeError:
                        continue


def run(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    log: Path,
    watch: Sequence[Path] = (),
    echo: Callable[[str], bool] = lambda line: False,
    interval: float = 1.0,
    timeout: Optional[float] = None,
) -> RunResult:
    """Run ``command``; return its exit code, wall time and the peaks sampled (memory every ``interval``
    seconds) while it ran."""
    import psutil

    log.parent.mkdir(parents=True, exist_ok=True)
    gpu_used = gpu_used_reader()
    sample = Sample(peak_gpu_used_bytes=None)
    start = time.monotonic()
    watcher = _Watcher(watch, start)
    stop = threading.Event()
    with open(log, "w") as handle:
        proc = subprocess.Popen(
            list(command), env=dict(env), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        root = psutil.Process(proc.pid)

        def sampler() -> None:
            next_memory = 0.0
            while not stop.is_set():
                if time.monotonic() >= next_memory:
                    next_memory = time.monotonic() + interval
                    pss, rss = _tree_memory(root)
                    sample.peak_host_pss = max(sample.peak_host_pss, pss)
                    sample.peak_host_rss = max(sample.peak_host_rss, rss)
                    if gpu_used is not None:
                        used = gpu_used()
                        if used is not None:
                            sample.peak_gpu_used_bytes = max(sample.peak_gpu_used_bytes or 0, used)
                watcher.poll()  # often: the arrival time of a metrics line is a step's end
                stop.wait(WATCH_INTERVAL)

        thread = threading.Thread(target=sampler, daemon=True)
        thread.start()
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                handle.write(line)
                if echo(line):
                    sys.stdout.write(line)
                    sys.stdout.flush()
                if timeout is not None and time.monotonic() - start > timeout:
                    proc.kill()
                    handle.write(f"\n[monitor] killed after {timeout:.0f} s\n")
                    break
            code = proc.wait()
        finally:
            stop.set()
            thread.join()
            watcher.poll()
    return RunResult(
        command=list(command),
        returncode=code,
        wall_s=time.monotonic() - start,
        peak_host_pss_gib=sample.peak_host_pss / GIB,
        peak_host_rss_gib=sample.peak_host_rss / GIB,
        peak_gpu_used_gib=None if sample.peak_gpu_used_bytes is None else sample.peak_gpu_used_bytes / GIB,
        log=log,
        lines=watcher.lines,
    )
