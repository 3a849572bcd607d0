"""Installs that work: a plain `pip install .` brings what the recipe imports; the documented GPU steps resolve.

- The package's requirements (setup.py) cover, through the installed distributions' own requirements,
  every third-party module the recipe imports and every module verl imports at module level (its
  runtime extra): the bug of a bare ``verl==0.9.1`` was ``No module named 'uvicorn'``.
- The GPU install of docs/gpu_guide.md (the ``gpu-install`` block) resolves with pip for CPython 3.12 on
  manylinux x86_64, binary wheels only, against PyPI, to exactly requirements/gpu.txt; flash-attn alone
  does not (source only), which is why it has its own step. Marked e2e: it runs pip against PyPI.
- docker/Dockerfile installs with the same steps.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import importlib.util
import re
import sys
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("recipe", "rewards", "data_prep")
#: Imported only where the config or the backend asks for them, installed by the GPU steps.
GPU_ONLY = {"vllm", "flash_attn"}
#: What verl 0.9.1 imports at module level in the driver and the workers besides its base requirements.
VERL_RUNTIME = ("transfer_queue", "zmq", "fastapi", "uvicorn", "starlette", "nvtx", "opentelemetry", "msgspec")


def _resolve_gpu_module():
    spec = importlib.util.spec_from_file_location("resolve_gpu", REPO_ROOT / "requirements" / "resolve_gpu.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["resolve_gpu"] = module
    spec.loader.exec_module(module)
    return module


resolve_gpu = _resolve_gpu_module()


def _setup_kwarg(name: str):
    """A literal keyword argument of the ``setup(...)`` call in setup.py."""
    tree = ast.parse((REPO_ROOT / "setup.py").read_text())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    return ast.literal_eval(next(k.value for k in call.keywords if k.arg == name))


def _closure(requirements: list[str]) -> set[str]:
    """Canonical names of the distributions ``requirements`` pull in, read from the installed metadata."""
    seen: set[str] = set()
    todo = [(Requirement(r), frozenset(Requirement(r).extras)) for r in requirements]
    while todo:
        req, extras = todo.pop()
        name = resolve_gpu._canonical(req.name)
        key = f"{name}[{','.join(sorted(extras))}]"
        if key in seen:
            continue
        seen.add(key)
        try:
            requires = md.requires(req.name) or []
        except md.PackageNotFoundError:
            continue
        for text in requires:
            sub = Requirement(text)
            if sub.marker is not None:
                envs = [{**default_environment(), "extra": e} for e in (extras or {""})]
                if not any(sub.marker.evaluate(env) for env in envs):
                    continue
            todo.append((sub, frozenset(sub.extras)))
    return {k.split("[")[0] for k in seen}


def _third_party_imports() -> set[str]:
    modules = set()
    for package in PACKAGES:
        for path in (REPO_ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    modules.update(a.name.split(".")[0] for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules.add(node.module.split(".")[0])
    return {m for m in modules if m not in sys.stdlib_module_names and m not in PACKAGES}


def test_plain_install_brings_every_module_the_recipe_and_verl_import():
    install_requires = _setup_kwarg("install_requires")
    assert "verl[verl-core]==0.9.1" in install_requires  # the runtime extra, not bare verl
    closure = _closure(install_requires)
    providers = md.packages_distributions()
    missing = {}
    for module in sorted((_third_party_imports() - GPU_ONLY) | set(VERL_RUNTIME)):
        dists = {resolve_gpu._canonical(d) for d in providers.get(module, [])}
        if not dists & closure:
            missing[module] = sorted(dists) or "not installed here"
    assert not missing, f"imported but not brought by setup.py's install_requires: {missing}"


def test_bare_verl_would_not_bring_its_runtime_modules():
    """The check above can fail: without the extra, uvicorn and TransferQueue are not in the closure."""
    closure = _closure(["verl==0.9.1"])
    assert "uvicorn" not in closure and "transferqueue" not in closure
    assert {"uvicorn", "transferqueue", "fastapi", "pyzmq"} <= _closure(["verl[verl-core]==0.9.1"])


def test_gpu_extra_is_verls_vllm_extra_and_pins_stay_out_of_setup_py():
    extras = _setup_kwarg("extras_require")
    assert extras["gpu"] == ["verl[vllm]==0.9.1"]  # not fsdp: it pins the source-only flash-attn
    assert not [r for r in _setup_kwarg("install_requires") if "==" in r and not r.startswith("verl[")]


def test_gpu_set_is_exact_and_agrees_with_verls_extras():
    pins = resolve_gpu.lock_pins()
    assert all(re.fullmatch(r"[\w.+!-]+", v) for v in pins.values())
    verl_requires = md.requires("verl")
    for name in ("torch", "torchvision", "torchaudio", "vllm", "transformers"):
        wanted = next(Requirement(r) for r in verl_requires if Requirement(r).name == name and 'extra == "vllm"' in r)
        assert pins[name] in wanted.specifier, (name, pins[name], str(wanted.specifier))
    flash = next(Requirement(r) for r in verl_requires if Requirement(r).name == "flash-attn")
    assert pins["flash-attn"] in flash.specifier and pins["verl"] == "0.9.1"
    assert resolve_gpu.PACKAGE not in pins


def test_documented_steps_are_three_constrained_pip_installs_in_order():
    steps = resolve_gpu.install_steps((REPO_ROOT / "docs" / "gpu_guide.md").read_text())
    assert [s.requirements for s in steps] == [("torch", "torchvision", "torchaudio"), ("flash-attn",), (".[gpu]",)]
    assert all(("-c", "requirements/gpu.txt") == s.options[:2] for s in steps)
    assert "--no-build-isolation" in steps[1].options and "-e" in steps[2].options


def test_every_gpu_install_block_in_the_docs_is_the_checked_one():
    """README.md or any page may show the GPU install, marked ``<!-- gpu-install -->``: the same steps."""
    checked = resolve_gpu.install_steps((REPO_ROOT / "docs" / "gpu_guide.md").read_text())
    for page in [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]:
        text = page.read_text()
        for block in re.findall(r"<!-- gpu-install -->\s*```bash\n.*?```", text, re.S):
            shown = resolve_gpu.install_steps(block)
            assert [(s.requirements, s.options) for s in shown] == [(s.requirements, s.options) for s in checked], page


def test_dockerfile_installs_with_the_documented_steps():
    text = (REPO_ROOT / "docker" / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=verlai/verl:\S+$", text, re.M) and "FROM ${BASE_IMAGE}" in text
    runs = " ".join(re.findall(r"^RUN (.+?)(?<!\\)$", text, re.M | re.S))
    for step in resolve_gpu.install_steps((REPO_ROOT / "docs" / "gpu_guide.md").read_text()):
        assert step.line.replace("pip install ", "") in runs, step.line
    assert "COPY requirements/gpu.txt" in text


def test_docs_name_no_file_outside_the_repository():
    offenders = []
    for path in sorted((REPO_ROOT / "docs").glob("*.md")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if re.search(r"(?<![\w.])/work/|\.\./shared/|\bshared/\w+\.md", line):
                offenders.append(f"{path.name}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


@pytest.mark.e2e
@pytest.mark.slow
def test_documented_gpu_install_resolves_for_python_312_manylinux_except_flash_attn():
    """pip's resolver, binary wheels only, CPython 3.12 / manylinux x86_64, against PyPI: the guide's steps."""
    resolved, flash_attn_message = resolve_gpu.resolve_documented_steps(use_lock=True)
    pins = resolve_gpu.lock_pins()
    for name, version in {"verl": "0.9.1", "vllm": pins["vllm"], "torch": pins["torch"]}.items():
        assert resolved[name] == version
    drift = {n: (v, pins.get(n)) for n, v in resolved.items() if n != resolve_gpu.PACKAGE and pins.get(n) != v}
    assert not drift, f"resolved versions differ from requirements/gpu.txt: {drift}"
    unused = set(pins) - set(resolved) - {"flash-attn"}
    assert not unused, f"requirements/gpu.txt pins packages the install does not bring: {sorted(unused)}"
    # flash-attn is the one thing without a wheel: pip says so, naming it
    assert f"No matching distribution found for flash-attn=={pins['flash-attn']}" in flash_attn_message, flash_attn_message
