"""Plumbing shared by the GPU run scripts (``grpo_resume.py``, ``sft_steps.py``, ``smoke_vllm.py``).

Where runs live (``.gpu_runs/``, ignored), the environment every trainer process gets, launching
``main_grpo`` with verl's file logger, and writing the one-line JSON result.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.gpu import monitor, workload  # noqa: E402

RUNS_ROOT = REPO_ROOT / ".gpu_runs"


def model_dir(device: str) -> Path:
    """The model every script of a session shares (built once: about 11 s and 7 GiB for the 3B one)."""
    return RUNS_ROOT / f"model-{device}"


def add_common_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument(
        "--device", default=os.environ.get("DEVICE", "cuda"), choices=workload.DEVICES, help="default: $DEVICE, else cuda"
    )
    parser.add_argument("--work", type=Path, default=None, help=f"work folder (default .gpu_runs/{name}-<device>)")
    parser.add_argument("--json", type=Path, default=None, help="also write the result, indented, to this file")


def work_dir(args: argparse.Namespace, name: str) -> Path:
    work = (args.work or RUNS_ROOT / f"{name}-{args.device}").resolve()
    work.mkdir(parents=True, exist_ok=True)
    return work


def trainer_env(device: str) -> dict[str, str]:
    """Environment of the trainer processes: the checkout importable, offline, unbuffered; the CPU
    backend's switch on cpu. Also applied to this process (the config check runs here)."""
    env = {
        "PYTHONPATH": os.pathsep.join(dict.fromkeys(filter(None, [str(REPO_ROOT), *os.environ.get("PYTHONPATH", "").split(os.pathsep)]))),
        "WANDB_MODE": "disabled",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONUNBUFFERED": "1",
    }
    if device == "cpu":
        from recipe.guardreasoner_vl.cpu_backend.overrides import CPU_ENV

        env.update(CPU_ENV)
    os.environ.update(env)
    return dict(os.environ)


def file_logger_overrides(metrics: Path) -> list[str]:
    """verl's file logger at ``metrics``: it runs in the task-runner actor, so the path travels in
    Ray's runtime env (and in the launching environment, for the driver)."""
    return ["trainer.logger=[console,file]", f"++ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH={metrics}"]


def progress_line(line: str) -> bool:
    """Lines worth showing on the console (the full log stays in the work folder)."""
    return "Training Progress" in line or "Traceback" in line or line.startswith(("Error", "RuntimeError", "step:"))


def launch(
    name: str,
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    work: Path,
    metrics: Optional[Path] = None,
    cwd: Optional[Path] = None,
) -> monitor.RunResult:
    """Run ``command`` in ``cwd`` (default ``work``) with its log at ``work/<name>.log``, watching
    ``metrics`` if given."""
    env = dict(env)
    watch: list[Path] = []
    if metrics is not None:
        metrics.unlink(missing_ok=True)  # verl's file logger truncates it anyway; no stale lines
        env["VERL_FILE_LOGGER_PATH"] = str(metrics)
        watch.append(metrics)
    result = monitor.run(command, env=env, cwd=cwd or work, log=work / f"{name}.log", watch=watch, echo=progress_line)
    print(f"[{name}] exit {result.returncode} after {result.wall_s:.0f} s (log {result.log})", flush=True)
    return result


def emit(
    report: dict[str, Any],
    json_path: Optional[Path],
    failed: Sequence[monitor.RunResult] = (),
    metrics: Optional[Mapping[str, Path]] = None,
) -> int:
    """Print the report as ONE JSON line; 0 if it is ok.

    With ``json_path`` the report is also written there, indented, and each run's raw verl metrics
    (``metrics``: run name -> file) are copied beside it as ``<stem>.<run>.metrics.jsonl``, so the
    figures can be recomputed from what verl logged."""
    if json_path is not None:
        json_path = Path(json_path)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        for name, source in (metrics or {}).items():
            if Path(source).is_file():
                shutil.copyfile(source, json_path.with_name(f"{json_path.stem}.{name}.metrics.jsonl"))
        tmp = json_path.with_name(json_path.name + ".tmp")
        tmp.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, json_path)
    for result in failed:
        if result.returncode != 0:
            print(f"--- end of {result.log}:\n{result.tail()}", file=sys.stderr)
    print(json.dumps(report, sort_keys=True), flush=True)
    return 0 if report.get("ok") else 1
