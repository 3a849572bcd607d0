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
