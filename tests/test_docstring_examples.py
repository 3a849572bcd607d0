"""Every ``>>>`` example in the project's docstrings runs and prints what it says.

Modules are found by reading the source of every layer package, so a new example is checked the
moment it is written, and a module whose examples stop matching the code fails here.
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("rewards", "data_prep", "inference", "evaluation", "recipe", "demo", "cli")


def modules_with_examples() -> list[str]:
    found = []
    for layer in LAYERS:
        for path in sorted((REPO_ROOT / layer).rglob("*.py")):
            if ">>> " in path.read_text(encoding="utf-8"):
                parts = path.relative_to(REPO_ROOT).with_suffix("").parts
                found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


def test_examples_are_found():
    assert "rewards.f1" in modules_with_examples()


@pytest.mark.parametrize("module_name", modules_with_examples())
def test_docstring_examples_run(module_name):
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0, f"{module_name}: no example was collected"
    assert result.failed == 0, f"{module_name}: {result.failed} of {result.attempted} examples failed (run it with -s to see)"
