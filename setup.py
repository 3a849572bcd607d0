"""GuardReasoner-VL on verl: a reasoning guard for vision-language models, as a verl 0.9.1 plugin.

Install anywhere:                  pip install .          (everything the recipe imports; CPU-only runs)
Install for a CPU, pinned (CI):    pip install -r requirements/cpu.txt -e .
Install on a GPU host (3 steps, docs/gpu_guide.md#install, exact set in requirements/gpu.txt):
    pip install -c requirements/gpu.txt torch torchvision torchaudio
    pip install -c requirements/gpu.txt --no-build-isolation flash-attn
    pip install -c requirements/gpu.txt -e ".[gpu]"
"""

from setuptools import find_packages, setup

#: Top-level packages, one per layer; each imports only from the layers before it.
LAYERS = ("rewards", "data_prep", "inference", "evaluation", "recipe", "demo", "cli")

setup(
    name="guardreasoner-vl",
    version="0.1.0",
    description="GuardReasoner-VL (reasoning VLM guard, R-SFT + GRPO) as a thin plugin on verl 0.9.1",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=[f"{top}{sub}" for top in LAYERS for sub in ("", ".*")]),
    include_package_data=True,
    package_data={
        "recipe.guardreasoner_vl": ["config/*.yaml"],
        "demo": ["sample_data/**/*", "sample_data/*"],
        "data_prep": ["templates/*"],
    },
    # Loose bounds only: exact pins live in requirements/ (cpu*.txt, gpu.txt) so they never fight an
    # install. verl's runtime extra (verl-core) brings what verl imports at module level in the driver and
    # in every worker (TransferQueue, pyzmq, fastapi, uvicorn, nvtx, ...); plain verl does not.
    install_requires=[
        "verl[verl-core]==0.9.1",
        "torch",
        "transformers>=5.5.3,<5.11",
        "ray",
        "psutil",
        "numpy",
        "omegaconf",
        "tensordict",
        "pandas",
        "pyarrow",
        "pillow",
        "datasets",
        "openai[aiohttp]",
        "qwen-vl-utils",
        "scikit-learn",
        "tqdm",
        "matplotlib",
        "hydra-core",
    ],
    extras_require={
        "test": ["pytest", "pytest-timeout", "hypothesis"],
        # verl 0.9.1's vLLM extra: vLLM 0.24 and the CUDA torch 2.11 it pins. Not verl's fsdp extra: it pins
        # flash-attn, which PyPI has only as source whose build needs torch first, so pip's isolated build
        # fails; flash-attn is installed in its own step (docs/gpu_guide.md#install).
        "gpu": ["verl[vllm]==0.9.1"],
    },
    entry_points={
        "console_scripts": ["guardreasoner-vl=cli.main:main"],
        # verl imports every entry point of this group in every process that imports verl.
        "verl.plugins": ["guardreasoner_vl=recipe.guardreasoner_vl.plugin"],
    },
)
