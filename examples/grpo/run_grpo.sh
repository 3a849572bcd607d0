#!/usr/bin/env bash
# GuardReasoner-VL GRPO (online RL from the R-SFT model) on one node with N GPUs, or as the entry point of a
# Ray job on a multi-node cluster (examples/grpo/submit_ray_job.sh).
#
# One script for the four paper runs: 3B / 7B and the standard / Eco reward differ only in the model and the
# config name (the paper trains both sizes with the same RL settings), so four copies would only drift apart.
# The paper's hyper-parameters live in recipe/guardreasoner_vl/config/guardreasoner_vl_grpo_base.yaml
# (n=16, temperature 1.2, 512 prompts/step, mini-batch 256, lr 1e-6, wd 0.01, no KL, 3072/3072 tokens,
# 1 epoch, dynamic product clip from 0.2); this script sets only what differs from the yaml: paths, run
# names, the cluster shape. Extra Hydra overrides given as arguments are appended last.
#
#   MODEL_SIZE=3b MODEL_PATH=runs/3b/models/r-sft bash examples/grpo/run_grpo.sh            # GuardReasoner-VL-3B
#   MODEL_SIZE=7b VARIANT=eco MODEL_PATH=runs/7b/models/r-sft bash examples/grpo/run_grpo.sh # GuardReasoner-VL-Eco-7B
#   GPUS_PER_NODE=8 bash examples/grpo/run_grpo.sh actor_rollout_ref.actor.optim.lr=2e-6     # any other override
#   CHECK_CONFIG=1 bash examples/grpo/run_grpo.sh     # compose + validate the config on any machine, run nothing
#   PRINT_OVERRIDES=1 bash examples/grpo/run_grpo.sh  # print the config name and the overrides, one per line
#   DEVICE=cpu MODEL_PATH=/tmp/tiny bash examples/grpo/run_grpo.sh trainer.total_training_steps=2 ...  # CPU smoke run
#   ABLATION=no-dynamic-clip MODEL_SIZE=7b bash examples/grpo/run_grpo.sh   # a row of the paper's Table 4 (see below)
#
# Resume: rerun the same command; verl continues from the latest checkpoint in CKPT_DIR (trainer.resume_mode=auto)
# and the dynamic clip continues at the restored step.
set -euo pipefail

# ---- model and data ---------------------------------------------------------------------------------
# 3b or 7b: names the run; the model is the R-SFT checkpoint of that size (HF folder).
MODEL_SIZE=${MODEL_SIZE:-3b}
case "${MODEL_SIZE}" in
  3b | 7b) ;;
  *) echo "run_grpo.sh: MODEL_SIZE must be 3b or 7b, got '${MODEL_SIZE}'" >&2; exit 2 ;;
esac
# standard (GuardReasoner-VL, beta = 1) or eco (GuardReasoner-VL-Eco, beta = 1/6).
VARIANT=${VARIANT:-standard}
case "${VARIANT}" in
  standard) DEFAULT_CONFIG=guardreasoner_vl_grpo ;;
  eco) DEFAULT_CONFIG=guardreasoner_vl_eco_grpo ;;
  *) echo "run_grpo.sh: VARIANT must be standard or eco, got '${VARIANT}'" >&2; exit 2 ;;
esac
CONFIG_NAME=${CONFIG_NAME:-${DEFAULT_CONFIG}}

# ---- ablations: the rows of the paper's Table 4 (docs/recipe.md#ablations-table-4) ----------------------
# none (the full recipe), no-concat (RL set without safety-aware concatenation: TRAIN_FILES defaults to the
# parquet build-rl wrote from the split without `concat`), no-dynamic-clip (constant clip 0.2), no-length-reward
# (r_safety alone), rsft-only (validation of the R-SFT model, no training: put the benchmarks in VAL_FILES).
ABLATION=${ABLATION:-none}
ablation_overrides=()
case "${ABLATION}" in
  none) ;;
  no-concat) TRAIN_FILES=${TRAIN_FILES:-runs/guardreasoner-vl-${MODEL_SIZE}/rl/train_noconcat.parquet} ;;
  no-dynamic-clip) ablation_overrides=("guardreasoner.clip_schedule.name=constant") ;;
  no-length-reward) ablation_overrides=("reward.custom_reward_function.reward_kwargs.length_aware=False") ;;
  rsft-only) ablation_overrides=("trainer.val_only=True") ;;
  *) echo "run_grpo.sh: ABLATION must be none, no-concat, no-dynamic-clip, no-length-reward or rsft-only," \
       "got '${ABLATION}'" >&2; exit 2 ;;
esac
[[ "${ABLATION}" == none ]] || EXPERIMENT_NAME=${EXPERIMENT_NAME:-grpo-${VARIANT}-${MODEL_SIZE}-${ABLATION}}
MODEL_PATH=${MODEL_PATH:-runs/guardreasoner-vl-${MODEL_SIZE}/models/r-sft}
TRAIN_FILES=${TRAIN_FILES:-runs/guardreasoner-vl-${MODEL_SIZE}/rl/train.parquet}
VAL_FILES=${VAL_FILES:-runs/guardreasoner-vl-${MODEL_SIZE}/rl/val.parquet}

# ---- run identity and outputs ---------------------------------------------------------------------
PROJECT_NAME=${PROJECT_NAME:-guardreasoner-vl}
EXPERIMENT_NAME=${EXPERIMENT_NAME:-grpo-${VARIANT}-${MODEL_SIZE}}
CKPT_DIR=${CKPT_DIR:-checkpoints/${PROJECT_NAME}/${EXPERIMENT_NAME}}
LOGGER=${LOGGER:-"['console']"}

# ---- cluster shape (paper: one node, 4 GPUs per RL run) -------------------------------------------
GPUS_PER_NODE=${GPUS_PER_NODE:-4}
NNODES=${NNODES:-1}

# ---- launcher ----------------------------------------------------------------------------------------
# cuda (default, vLLM rollout) or cpu: the recipe's CPU backend (tiny model, smoke tests).
DEVICE=${DEVICE:-cuda}
# 1 = compose the config with these overrides and run verl's validation (CPU, seconds), then exit.
CHECK_CONFIG=${CHECK_CONFIG:-0}
# 1 = print the config name and the overrides (one per line), then exit.
PRINT_OVERRIDES=${PRINT_OVERRIDES:-0}
PYTHON=${PYTHON:-python}

overrides=(
  "data.train_files=${TRAIN_FILES}"
  "data.val_files=${VAL_FILES}"
  "actor_rollout_ref.model.path=${MODEL_PATH}"
  "trainer.project_name=${PROJECT_NAME}"
  "trainer.experiment_name=${EXPERIMENT_NAME}"
  "trainer.default_local_dir=${CKPT_DIR}"
  "trainer.logger=${LOGGER}"
)

if [[ "${DEVICE}" == cuda ]]; then
  overrides+=(
    "trainer.n_gpus_per_node=${GPUS_PER_NODE}"
    "trainer.nnodes=${NNODES}"
  )
elif [[ "${DEVICE}" == cpu ]]; then
  # The CPU backend (docs/cpu_backend.md): verl's platform variable in every process, plus its overrides
  # (one process, hf rollout; they set the cluster shape themselves).
  export VERL_PLATFORM=cpu
  mapfile -t cpu_overrides < <("${PYTHON}" -m recipe.guardreasoner_vl.cpu_backend.overrides)
  overrides+=("${cpu_overrides[@]}")
else
  echo "run_grpo.sh: DEVICE must be cuda or cpu, got '${DEVICE}'" >&2
  exit 2
fi

overrides+=(${ablation_overrides[@]+"${ablation_overrides[@]}"})

if [[ "${PRINT_OVERRIDES}" == 1 ]]; then
  printf '%s\n' "${CONFIG_NAME}" "${overrides[@]}" "$@"
  exit 0
fi

if [[ "${CHECK_CONFIG}" == 1 ]]; then
  exec "${PYTHON}" -m cli check-config --config-name "${CONFIG_NAME}" grpo "${overrides[@]}" "$@"
fi

exec "${PYTHON}" -m recipe.guardreasoner_vl.main_grpo \
  --config-name "${CONFIG_NAME}" \
  "${overrides[@]}" \
  "$@"
