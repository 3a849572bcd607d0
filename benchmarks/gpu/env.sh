# Sourced by run.sh (or by hand: `source benchmarks/gpu/env.sh`): the environment of every command on
# the GPU host. The checkout is importable; when the carried wheels are installed (.gpu_site, see
# host_install.py) they come first on the path, ahead of the host's own packages (its transformers is
# newer than verl 0.9.1 allows), and verl loads the recipe's plugin through its module list, because
# the recipe is not pip-installed there (no entry point). Elsewhere (a full install) only the checkout
# is added.
GPU_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
GPU_SITE=${GPU_SITE:-${GPU_REPO}/.gpu_site}
if [[ -d "${GPU_SITE}" ]]; then
  export PYTHONPATH="${GPU_REPO}:${GPU_SITE}${PYTHONPATH:+:${PYTHONPATH}}"
  export VERL_USE_EXTERNAL_MODULES=recipe.guardreasoner_vl.plugin
  export PATH="${GPU_SITE}/bin:${PATH}"
else
  export PYTHONPATH="${GPU_REPO}${PYTHONPATH:+:${PYTHONPATH}}"
fi
export PYTHON=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 WANDB_MODE=disabled TOKENIZERS_PARALLELISM=false RAY_DEDUP_LOGS=0
