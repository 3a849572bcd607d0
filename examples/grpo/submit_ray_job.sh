#!/usr/bin/env bash
# GuardReasoner-VL GRPO on an existing multi-node Ray cluster: submits examples/grpo/run_grpo.sh as a Ray job.
#
# 1. On every node: the same checkout at the same path, installed (docs/gpu_guide.md#install), and the data,
#    the R-SFT model and the checkpoint folder on storage every node sees at the same path.
# 2. Start the cluster (one head, then each worker; every node offers its GPUs to Ray):
#      head:    ray start --head --port=6379 --dashboard-host=0.0.0.0 --num-gpus=8
#      workers: ray start --address=<head-ip>:6379 --num-gpus=8
#      check:   ray status     (should list NNODES x GPUS_PER_NODE GPUs)
# 3. Submit from any machine that reaches the dashboard (default port 8265):
#      RAY_ADDRESS=http://<head-ip>:8265 NNODES=2 GPUS_PER_NODE=8 MODEL_SIZE=7b \
#        MODEL_PATH=/shared/models/r-sft-7b TRAIN_FILES=/shared/rl/train.parquet VAL_FILES=/shared/rl/val.parquet \
#        CKPT_DIR=/shared/checkpoints/grpo-7b WANDB_API_KEY=... LOGGER="['console','wandb']" \
#        bash examples/grpo/submit_ray_job.sh
#    verl's driver (the job's entry point) connects to the running cluster instead of starting one, so do
#    not pass ray_kwargs.ray_init.num_cpus/num_gpus. Follow the job with `ray job logs -f <id>`; stop it with
#    `ray job stop <id>`; resubmitting resumes from the latest checkpoint in CKPT_DIR.
#
# What reaches the cluster:
# - every variable of run_grpo.sh that is set here (MODEL_SIZE, VARIANT, ABLATION, CONFIG_NAME, MODEL_PATH, TRAIN_FILES,
#   VAL_FILES, PROJECT_NAME, EXPERIMENT_NAME, CKPT_DIR, LOGGER, MAX_CKPT_TO_KEEP, ACTOR_OFFLOAD, GPUS_PER_NODE,
#   NNODES, PYTHON), in the job's entry point; local paths among them are made absolute here, against this
#   folder (submit from a cluster node, or give absolute paths on the shared storage); unset ones keep
#   run_grpo.sh's defaults, relative to REPO_DIR on the cluster;
# - environment variables, to the driver and to EVERY Ray worker, through the job's runtime_env: those of
#   RAY_ENV_VARS (the list below: tracking, Hugging Face, NCCL, the recipe's switches) plus the names in
#   EXTRA_ENV_VARS ("FOO BAR"), each only if set here. Without this a worker sees only the environment its
#   `ray start` had: WANDB_API_KEY or HF_TOKEN given at submission would reach the driver alone. The values
#   are visible to whoever can read the job's details on the Ray dashboard. Names verl's driver forwards to
#   the workers itself (VERL_FULL_DETERMINISM, PYTHONHASHSEED, NCCL_ALGO, ...) go to the driver only: Ray
#   refuses a job whose runtime_env sets a variable the driver's ray.init sets too.
# Extra arguments are Hydra overrides appended last. DRY_RUN=1 prints the submit command (secret values as ***)
# and runs nothing.
set -euo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
source "${here}/../paths.sh"

# Ray dashboard address of the running cluster (ray job submit's --address).
RAY_ADDRESS=${RAY_ADDRESS:-http://127.0.0.1:8265}
# The checkout on the cluster nodes (the job's entry point runs there; default: this checkout).
REPO_DIR=${REPO_DIR:-$(cd "${here}/../.." && pwd)}
# The script the job runs, relative to REPO_DIR.
ENTRY_SCRIPT=${ENTRY_SCRIPT:-examples/grpo/run_grpo.sh}
# Cluster shape: 2 nodes x 8 GPUs by default for a multi-node run (the paper used 4 GPUs on one node).
NNODES=${NNODES:-2}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
# Submission id (ray job status/logs/stop take it); empty = Ray picks one.
SUBMISSION_ID=${SUBMISSION_ID:-}
# Environment variables every Ray worker gets when they are set here (add your own with EXTRA_ENV_VARS).
RAY_ENV_VARS=${RAY_ENV_VARS:-"WANDB_API_KEY WANDB_BASE_URL WANDB_ENTITY WANDB_PROJECT WANDB_MODE WANDB_DIR
  HF_TOKEN HF_HOME HF_HUB_CACHE HF_ENDPOINT HF_HUB_OFFLINE HF_DATASETS_OFFLINE
  NCCL_SOCKET_IFNAME NCCL_IB_HCA NCCL_IB_DISABLE NCCL_DEBUG GLOO_SOCKET_IFNAME TP_SOCKET_IFNAME
  GUARDREASONER_VERL_FIXES VERL_LOGGING_LEVEL VERL_FILE_LOGGER_PATH TMPDIR"}
EXTRA_ENV_VARS=${EXTRA_ENV_VARS:-}
DRY_RUN=${DRY_RUN:-0}
RAY=${RAY:-ray}
# Interpreter of this (submitting) machine, used to write the runtime_env JSON.
LOCAL_PYTHON=${LOCAL_PYTHON:-python3}

# Variables verl's driver reads from its own environment and forwards to the workers (verl/trainer/constants_ppo.py).
VERL_FORWARDED="VERL_FULL_DETERMINISM VLLM_BATCH_INVARIANT VERL_RL_INSIGHT_ENABLE TRANSFER_QUEUE_ENABLE PYTHONHASHSEED
  CUBLAS_WORKSPACE_CONFIG FLASH_ATTENTION_DETERMINISTIC NCCL_DETERMINISTIC NCCL_ALGO NVTX_INJECTION64_PATH"

forward=("NNODES=${NNODES}" "GPUS_PER_NODE=${GPUS_PER_NODE}")
for name in MODEL_SIZE VARIANT ABLATION CONFIG_NAME MODEL_PATH TRAIN_FILES VAL_FILES PROJECT_NAME EXPERIMENT_NAME \
  CKPT_DIR LOGGER MAX_CKPT_TO_KEEP ACTOR_OFFLOAD PYTHON; do
  [[ -n "${!name:-}" ]] || continue
  value=${!name}
  case "${name}" in
    MODEL_PATH) value=$(abs_model_path "${value}") ;;
    TRAIN_FILES | VAL_FILES) value=$(abs_path_list "${value}") ;;
    CKPT_DIR) value=$(abs_path "${value}") ;;
  esac
  forward+=("${name}=${value}")
done

# The runtime_env's environment variables: the named ones that are set here, minus verl's own (driver only).
runtime_names=()
for name in ${RAY_ENV_VARS} ${EXTRA_ENV_VARS//,/ }; do
  [[ "${name}" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || { echo "submit_ray_job.sh: not a variable name: '${name}'" >&2; exit 2; }
  [[ -n "${!name+set}" ]] || continue
  if [[ " ${VERL_FORWARDED//$'\n'/ } " == *" ${name} "* ]]; then
    forward+=("${name}=${!name}")
  else
    runtime_names+=("${name}")
  fi
done
runtime_env_json() {  # runtime_env_json MASK NAME...: {"env_vars": {...}} from this environment (MASK=1: secrets as ***)
  "${LOCAL_PYTHON}" - "$@" <<'PY'
import json, os, re, sys
mask, names = sys.argv[1] == "1", sys.argv[2:]
secret = re.compile(r"KEY|TOKEN|SECRET|PASSWORD", re.I)
print(json.dumps({"env_vars": {n: ("***" if mask and secret.search(n) else os.environ[n]) for n in names}}))
PY
}

submit_cmd() {  # submit_cmd JSON: the ray job submit command line
  local cmd=("${RAY}" job submit --address "${RAY_ADDRESS}")
  [[ -n "${SUBMISSION_ID}" ]] && cmd+=(--submission-id "${SUBMISSION_ID}")
  [[ ${#runtime_names[@]} -gt 0 ]] && cmd+=(--runtime-env-json "$1")
  cmd+=(-- env "${forward[@]}" bash -c 'cd "$1" && shift && entry=$1 && shift && exec bash "${entry}" "$@"'
    run_grpo "${REPO_DIR}" "${ENTRY_SCRIPT}" "${ARGS[@]}")
  printf '%s\0' "${cmd[@]}"
}
ARGS=("$@")

if [[ "${DRY_RUN}" == 1 ]]; then
  mapfile -d '' shown < <(submit_cmd "$(runtime_env_json 1 "${runtime_names[@]}")")
  printf '%q ' "${shown[@]}"
  echo
  exit 0
fi
mapfile -d '' cmd < <(submit_cmd "$(runtime_env_json 0 "${runtime_names[@]}")")
exec "${cmd[@]}"
