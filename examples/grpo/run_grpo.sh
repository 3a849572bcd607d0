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
#   CHECK_CONFIG=full HOST_MEMORY_GIB=1024 bash examples/grpo/run_grpo.sh  # + this machine: model, data, packages
#   PRINT_OVERRIDES=1 bash examples/grpo/run_grpo.sh  # print the config name and the overrides, one per line
#   DEVICE=cpu MODEL_PATH=/tmp/tiny bash examples/grpo/run_grpo.sh trainer.total_training_steps=2 ...  # CPU smoke run
#   ABLATION=no-dynamic-clip MODEL_SIZE=7b bash examples/grpo/run_grpo.sh   # a row of the paper's Table 4 (see below)
#
# Resume: rerun the same command; verl continues from the latest checkpoint in CKPT_DIR (trainer.resume_mode=auto)
# and the dynamic clip continues at the restored step.
#
# On a Ray cluster: every local path is made absolute here, before it reaches Ray (a relative checkpoint folder
# would be written on node-local disks and never found on resume); to join a running cluster submit this
# script with submit_ray_job.sh, which also hands the environment variables to every worker.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../paths.sh"

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
# Actor checkpoints kept in CKPT_DIR (a 7B one is about 100 GB, one every save_freq steps); 0 = keep all.
# Only the checkpoints of the current session are pruned: remove older global_step_* by hand after a restart.
MAX_CKPT_TO_KEEP=${MAX_CKPT_TO_KEEP:-2}

# ---- cluster shape (paper: one node, 4 GPUs per RL run) -------------------------------------------
GPUS_PER_NODE=${GPUS_PER_NODE:-4}
NNODES=${NNODES:-1}

# ---- memory (docs/gpu_guide.md) ----------------------------------------------------------------------
# FSDP offload of the actor's weights and optimizer states to host memory between phases, so they do not
# sit beside vLLM's share during rollout. auto = on when the sharded states would not leave room for vLLM
# on 80 GB GPUs: 7B on fewer than 8 GPUs, 3B on fewer than 4. True / False force it.
ACTOR_OFFLOAD=${ACTOR_OFFLOAD:-auto}

# ---- launcher ----------------------------------------------------------------------------------------
# cuda (default, vLLM rollout) or cpu: the recipe's CPU backend (tiny model, smoke tests).
DEVICE=${DEVICE:-cuda}
# 1 = compose the config with these overrides and validate it (any machine, seconds), then exit;
# full = also check this machine as the entry point will (model folder, data files, flash-attn, vLLM).
CHECK_CONFIG=${CHECK_CONFIG:-0}
# Host memory per node in GiB: the check warns when a step's TransferQueue payload exceeds it (empty: no check).
HOST_MEMORY_GIB=${HOST_MEMORY_GIB:-}
# 1 = print the config name and the overrides (one per line), then exit.
PRINT_OVERRIDES=${PRINT_OVERRIDES:-0}
PYTHON=${PYTHON:-python}

# ---- paths: absolute before they reach Ray (examples/paths.sh) ---------------------------------------
MODEL_PATH=$(abs_model_path "${MODEL_PATH}")
TRAIN_FILES=$(abs_path_list "${TRAIN_FILES}")
VAL_FILES=$(abs_path_list "${VAL_FILES}")
CKPT_DIR=$(abs_path "${CKPT_DIR}")

overrides=(
  "data.train_files=${TRAIN_FILES}"
  "data.val_files=${VAL_FILES}"
  "actor_rollout_ref.model.path=${MODEL_PATH}"
  "trainer.project_name=${PROJECT_NAME}"
  "trainer.experiment_name=${EXPERIMENT_NAME}"
  "trainer.default_local_dir=${CKPT_DIR}"
  "trainer.logger=${LOGGER}"
)

# ---- checkpoint retention --------------------------------------------------------------------------
if [[ "${MAX_CKPT_TO_KEEP}" == 0 ]]; then keep=null; else keep=${MAX_CKPT_TO_KEEP}; fi
overrides+=(
  "trainer.max_actor_ckpt_to_keep=${keep}"
  "trainer.max_critic_ckpt_to_keep=${keep}"
)

if [[ "${DEVICE}" == cuda ]]; then
  overrides+=(
    "trainer.n_gpus_per_node=${GPUS_PER_NODE}"
    "trainer.nnodes=${NNODES}"
  )
  # ---- memory: actor offload (auto: the 80 GB rule above) ----------------------------------------------
  gpus=$((GPUS_PER_NODE * NNODES))
  case "${ACTOR_OFFLOAD}" in
    auto)
      if [[ ("${MODEL_SIZE}" == 7b && ${gpus} -lt 8) || ("${MODEL_SIZE}" == 3b && ${gpus} -lt 4) ]]; then
        offload=True
        echo "run_grpo.sh: ${MODEL_SIZE} on ${gpus} GPUs: the actor's states would not leave room for vLLM on 80 GB" \
          "GPUs, so actor param and optimizer offload are on (ACTOR_OFFLOAD=False turns them off, e.g. on 141 GB GPUs)" >&2
      else
        offload=False
      fi
      ;;
    True | False) offload=${ACTOR_OFFLOAD} ;;
    *) echo "run_grpo.sh: ACTOR_OFFLOAD must be auto, True or False, got '${ACTOR_OFFLOAD}'" >&2; exit 2 ;;
  esac
  overrides+=(
    "actor_rollout_ref.actor.fsdp_config.param_offload=${offload}"
    "actor_rollout_ref.actor.fsdp_config.optimizer_offload=${offload}"
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

if [[ "${CHECK_CONFIG}" != 0 ]]; then
  check=(--config-name "${CONFIG_NAME}")
  case "${CHECK_CONFIG}" in
    1) ;;
    full) check+=(--this-machine) ;;
    *) echo "run_grpo.sh: CHECK_CONFIG must be 0, 1 or full, got '${CHECK_CONFIG}'" >&2; exit 2 ;;
  esac
  [[ -n "${HOST_MEMORY_GIB}" ]] && check+=(--host-memory-gib "${HOST_MEMORY_GIB}")
  exec "${PYTHON}" -m cli check-config "${check[@]}" grpo "${overrides[@]}" "$@"
fi

# Joining a running cluster from a shell (not as a Ray job): this shell's environment reaches the driver only.
if [[ -n "${RAY_ADDRESS:-}" && -z "${RAY_JOB_CONFIG_JSON_ENV_VAR:-}" ]]; then
  echo "run_grpo.sh: RAY_ADDRESS is set: the Ray workers do not see this shell's environment (WANDB_API_KEY," \
    "HF_TOKEN, ...); submit with examples/grpo/submit_ray_job.sh, which passes them in the job's runtime_env" >&2
fi

exec "${PYTHON}" -m recipe.guardreasoner_vl.main_grpo \
  --config-name "${CONFIG_NAME}" \
  "${overrides[@]}" \
  "$@"
