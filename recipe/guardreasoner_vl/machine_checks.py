"""Checks of the machine a run starts on: model folder, data files, packages, paths a cluster can resolve.

verl finds a missing model folder when a worker loads it, a missing flash-attn when the model is built
with ``flash_attention_2`` (or at the first padding-free forward) and a missing vLLM when the rollout
starts: each after Ray, the workers and the GPUs are up. These checks run on the driver before that.

Paths. On a cluster started with ``ray start``, only the job's driver runs in the launch folder; the
workers resolve a relative path against their own working folder on their own disk. A relative
checkpoint folder is then written node-locally, resume finds nothing and silently restarts at step 0.
A multi-node run with a relative path is therefore refused (the launch scripts make their paths
absolute before they reach Ray). Remote paths (``hdfs://``, ``s3://``...) are left to verl.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from pathlib import Path
from typing import Any, Iterable, Optional

from omegaconf import ListConfig, OmegaConf

__all__ = [
    "DATA_KEYS",
    "OUTPUT_KEYS",
    "check_this_machine",
    "data_file_problem",
    "is_hub_id",
    "model_folder_problem",
    "needed_packages",
]

#: Config keys holding data files and output folders (the same in the SFT and the GRPO config).
DATA_KEYS = ("data.train_files", "data.val_files")
OUTPUT_KEYS = ("trainer.default_local_dir",)

#: ``org/name`` as the Hugging Face hub spells a model id.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
#: Files that hold a transformers model's weights.
_WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json", "*.pt")


def _paths(value: Any) -> list[str]:
    """The path strings of a config value: a string, a list of strings, or null."""
    if value is None:
        return []
    if isinstance(value, (list, tuple, ListConfig)):
        return [str(v) for v in value if v is not None]
    return [str(value)]


def _is_remote(path: str) -> bool:
    return "://" in path


def is_hub_id(path: str) -> bool:
    """``Qwen/Qwen2.5-VL-3B-Instruct``-like and not a local path (verl downloads it on each worker)."""
    return bool(_HUB_ID.match(path)) and not Path(path).expanduser().exists()


def model_folder_problem(path: str, key: str) -> Optional[str]:
    """Why ``path`` is not a usable Hugging Face model folder (None when it is)."""
    folder = Path(path).expanduser()
    if not folder.exists():
        return f"{key}={path}: no such folder"
    if not folder.is_dir():
        return f"{key}={path}: not a folder (a Hugging Face model folder with config.json and weights)"
    if not os.access(folder, os.R_OK | os.X_OK):
        return f"{key}={path}: folder not readable by this user"
    config = folder / "config.json"
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"{key}={path}: no config.json (export the checkpoint with export_hf first)"
    except (OSError, ValueError) as err:
        return f"{key}={path}: config.json unreadable: {err}"
    weights = [p for pattern in _WEIGHT_PATTERNS for p in folder.glob(pattern)]
    if not weights:
        return f"{key}={path}: no weights (*.safetensors or *.bin) in the folder"
    unreadable = [p.name for p in weights if not os.access(p, os.R_OK)]
    if unreadable:
        return f"{key}={path}: weight files not readable by this user: {', '.join(sorted(unreadable))}"
    return None


def data_file_problem(path: str, key: str) -> Optional[str]:
    """Why ``path`` is not a readable data file or folder (None when it is)."""
    target = Path(path).expanduser()
    if not target.exists():
        return f"{key}={path}: no such file"
    if not os.access(target, os.R_OK):
        return f"{key}={path}: not readable by this user"
    return None


def needed_packages(cfg: Any, model_key: str, rollout_key: Optional[str] = None) -> dict[str, str]:
    """Importable module -> why the config needs it on this machine (flash-attn, vLLM)."""
    needed: dict[str, str] = {}
    device = str(OmegaConf.select(cfg, "trainer.device", default="cuda") or "cuda")
    if device == "cuda":
        attn = OmegaConf.select(cfg, f"{model_key}.override_config.attn_implementation", default=None)
        attn = attn or "flash_attention_2"  # verl's HFModelConfig default
        remove_padding = bool(OmegaConf.select(cfg, f"{model_key}.use_remove_padding", default=False))
        if attn == "flash_attention_2" or remove_padding:
            why = []
            if attn == "flash_attention_2":
                why.append(f"{model_key}.override_config.attn_implementation is flash_attention_2 (verl's default)")
            if remove_padding:
                why.append(f"{model_key}.use_remove_padding=True")
            needed["flash_attn"] = " and ".join(why)
        if attn == "flash_attention_3":
            needed["flash_attn_interface"] = f"{model_key}.override_config.attn_implementation is flash_attention_3"
    if rollout_key is not None:
        name = OmegaConf.select(cfg, f"{rollout_key}.name", default=None)
        if name in ("vllm", "sglang"):
            needed[name] = f"{rollout_key}.name={name}"
    return needed


_INSTALL_HINT = {
    "flash_attn": "install it without build isolation after torch (pip install --no-build-isolation -c "
    "requirements/gpu.txt flash-attn), or set +{model}.override_config.attn_implementation=sdpa "
    "{model}.use_remove_padding=False",
    "vllm": "install the package's gpu extra (pip install -c requirements/gpu.txt '.[gpu]')",
}


def _relative_paths(cfg: Any, keys: Iterable[str], model_key: str) -> list[str]:
    """``key=path`` for each relative local path (a hub id in the model key is not a path)."""
    found = []
    for key in keys:
        for path in _paths(OmegaConf.select(cfg, key, default=None)):
            if not path or _is_remote(path) or os.path.isabs(path):
                continue
            if key == f"{model_key}.path" and is_hub_id(path):
                continue
            found.append(f"{key}={path}")
    return found


def check_this_machine(report: Any, *, model_key: str, this_machine: bool) -> None:
    """Paths, model folder, data files and packages; appends to ``report.passed/skipped/problems``.

    With ``this_machine=False`` (a config checked anywhere) what is absent is skipped and what is
    present is still checked; with ``True`` (the entry points) absent is a problem.
    """
    cfg = report.config
    model_path = OmegaConf.select(cfg, f"{model_key}.path", default=None)

    nnodes = int(OmegaConf.select(cfg, "trainer.nnodes", default=1) or 1)
    relative = _relative_paths(cfg, (*DATA_KEYS, *OUTPUT_KEYS, f"{model_key}.path"), model_key)
    if nnodes > 1 and relative:
        report.problems.append(
            f"relative path(s) in a {nnodes}-node run: {', '.join(relative)}. Each node resolves them in its own"
            " working folder (checkpoints end up on node-local disks, resume silently starts at step 0): give"
            " absolute paths on storage every node sees (the launch scripts do)"
        )

    # the model folder
    if model_path and not _is_remote(str(model_path)):
        path = str(model_path)
        if is_hub_id(path):
            report.skipped.append(f"model ({model_key}.path={path} is a hub id, downloaded by verl)")
        elif not Path(path).expanduser().exists() and not this_machine:
            report.skipped.append(f"model ({model_key}.path={path} is not a local folder yet)")
        else:
            report.check("model folder", [p for p in [model_folder_problem(path, f"{model_key}.path")] if p])

    # the data files
    problems, absent = [], []
    for key in DATA_KEYS:
        for path in _paths(OmegaConf.select(cfg, key, default=None)):
            if _is_remote(path):
                continue
            if not Path(path).expanduser().exists() and not this_machine:
                absent.append(f"{key}={path}")
                continue
            problem = data_file_problem(path, key)
            if problem:
                problems.append(problem)
    if absent:
        report.skipped.append(f"data files ({', '.join(absent)} not there yet)")
    elif not problems:
        report.passed.append("data files")
    report.problems.extend(problems)

    # the packages
    rollout_key = "actor_rollout_ref.rollout" if model_key.startswith("actor_rollout_ref") else None
    needed = needed_packages(cfg, model_key, rollout_key)
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if not this_machine:
        if needed:
            report.skipped.append(f"packages ({', '.join(needed)} not checked: this machine is not the run's)")
        return
    for module in missing:
        hint = _INSTALL_HINT.get(module, f"install {module}").format(model=model_key)
        report.problems.append(f"{module} is not installed but the config needs it ({needed[module]}): {hint}")
    if needed and not missing:
        report.passed.append("packages")
