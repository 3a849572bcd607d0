"""GuardReasoner-VL on verl: a reasoning guard for vision-language models, as a verl 0.9.1 plugin.

Install for a CPU (tests, demo):   pip install -r requirements/cpu.txt -e .
Install on a GPU host:             pip install -e ".[gpu]"
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
    # Loose lower bounds only: exact CPU pins live in requirements/cpu*.txt so they never fight
    # a GPU install (verl's GPU extras pin their own torch).
    install_requires=[
        "verl==0.9.1",
        "transformers>=5.5.3,<5.11",
        "ray",
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
        # verl 0.9.1's own GPU pins (verl[vllm,fsdp]): vLLM rollout, flash-attn, CUDA torch.
        "gpu": ["verl[vllm,fsdp]==0.9.1"],
    },
    entry_points={
        "console_scripts": ["guardreasoner-vl=cli.main:main"],
        # verl imports every entry point of this group in every process that imports verl.
        "verl.plugins": ["guardreasoner_vl=recipe.guardreasoner_vl.plugin"],
    },
)
