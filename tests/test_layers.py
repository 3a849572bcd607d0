"""The package layers point one way, as the folders say.

``rewards`` (the verdict grammar and reward) < ``data_prep`` (records, readers, writers, concatenation,
synthesis) < ``inference`` (generation backends) < ``evaluation`` (benchmarks, scoring, mining) <
``recipe`` (the verl integration) < ``demo`` (tiny model, sample, the CPU demo) < ``cli`` (commands).
A module imports only from its own layer or a lower one, and a lower layer reaches another project
layer only through a module-level import: an import hidden inside a function to dodge a cycle means
the module sits on the wrong floor.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("rewards", "data_prep", "inference", "evaluation", "recipe", "demo", "cli")
RANK = {name: rank for rank, name in enumerate(LAYERS)}


def project_imports(path: Path) -> list[tuple[str, int, bool]]:
    """``(imported top-level package, line, at module level)`` for every project import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    module_level = {id(node) for node in tree.body}
    for node in tree.body:  # imports under a module-level ``if``/``try`` count as module level too
        if isinstance(node, (ast.If, ast.Try)):
            module_level.update(id(child) for child in ast.walk(node))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in RANK:
                found.append((top, node.lineno, id(node) in module_level))
    return found


def layer_modules() -> list[tuple[str, Path]]:
    return [(layer, path) for layer in LAYERS for path in sorted((REPO_ROOT / layer).rglob("*.py"))]


def test_every_layer_exists_and_setup_installs_them_all():
    setup_py = (REPO_ROOT / "setup.py").read_text(encoding="utf-8")
    for layer in LAYERS:
        assert (REPO_ROOT / layer / "__init__.py").is_file(), f"layer package {layer}/ is missing"
        assert f'"{layer}"' in setup_py, f"setup.py does not install {layer}"


@pytest.mark.parametrize("layer,path", layer_modules(), ids=lambda v: str(v.relative_to(REPO_ROOT)) if isinstance(v, Path) else v)
def test_imports_point_down(layer, path):
    for top, line, _ in project_imports(path):
        assert RANK[top] <= RANK[layer], (
            f"{path.relative_to(REPO_ROOT)}:{line} imports {top} (layer {RANK[top]}) from layer {layer} ({RANK[layer]})"
        )


@pytest.mark.parametrize(
    "layer,path", [(lay, p) for lay, p in layer_modules() if lay not in ("demo", "cli")],
    ids=lambda v: str(v.relative_to(REPO_ROOT)) if isinstance(v, Path) else v,
)
def test_lower_layers_import_other_layers_at_module_level(layer, path):
    for top, line, at_module_level in project_imports(path):
        if top != layer:
            assert at_module_level, f"{path.relative_to(REPO_ROOT)}:{line} imports {top} inside a function"


def test_the_checker_sees_a_hidden_upward_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import json\nfrom data_prep.record import GuardRecord\n\ndef f():\n    from cli.main import main\n")
    assert project_imports(module) == [("data_prep", 2, True), ("cli", 5, False)]
