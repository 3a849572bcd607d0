"""Shared fixtures: the tiny model and the bundled sample, each built once per test session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# Tests import the project from the checkout even when it is not installed.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random Qwen2.5-VL with tokenizer and processor (built offline, seed 0)."""
    pytest.importorskip("torch")
    from demo.tiny_model import build_tiny_model

    out = tmp_path_factory.mktemp("tiny_model")
    return build_tiny_model(out, seed=0)


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The bundled sample corpus and mini benchmarks (package data)."""
    from demo.sample import SAMPLE_DIR

    return SAMPLE_DIR


@pytest.fixture(scope="session")
def near_greedy_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model with the sampling defaults Qwen2-VL-family Instruct checkpoints ship in
    generation_config.json (do_sample with top_k 1, top_p 0.001, temperature 0.1), and a
    repetition_penalty raised from their 1.05 to 1.5: the smallest round value that changes the
    tiny model's greedy output, so a leak shows."""
    import json
    import shutil

    folder = tmp_path_factory.mktemp("near_greedy") / "model"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "generation_config.json").read_text())
    config.update(do_sample=True, top_k=1, top_p=0.001, temperature=0.1, repetition_penalty=1.5)
    (folder / "generation_config.json").write_text(json.dumps(config, indent=2))
    return folder
