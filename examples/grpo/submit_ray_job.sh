#!/usr/bin/env bash
# GuardReasoner-VL GRPO on an existing multi-node Ray cluster: submits examples/grpo/run_grpo.sh as a Ray job.
#
# 1. On every node: the same checkout at the same path, installed (pip install -e ".[gpu]"), and the data,
#    the R-SFT model and the checkpoint folder on storage every node sees at the same path.
# 2. Start the cluster (one head, then each worker; every node offers its GPUs to Ray):
#      head:    ray start --head --port=6379 --dashboard-host=0.0.0.0 --num-gpus=8
#      workers: ray start --address=<head-ip>:6379 --num-gpus=8
#      check:   ray status     (should list NNODES x GPUS_PER_NODE GPUs)
# 3. Submit from any machine that reaches the dashboard (default port 8265):
#      RAY_ADDRESS=http://<head-ip>:8265 NNODES=2 GPUS_PER_NODE=8 MODEL_SIZE=7b \
#        MODEL_PATH=/shared/models/r-sft-7b TRAIN_FILES=/shared/rl/train.parquet VAL_FILES=/shared/rl/val.parquet \
#        CKPT_DIR=/shared/checkpoints/grpo-7b bash examples/grpo/submit_ray_job.sh
#    verl's driver (the job's entry point) connects to the running cluster instead of starting one, so do
#    not pass ray_kwargs.ray_init.num_cpus/num_gpus. Follow the job with `ray job logs -f <id>`; stop it with
#    `ray job stop <id>`; resubmitting resumes from the latest checkpoint in CKPT_DIR.
#
# Every variable of run_grpo.sh is forwarded (MODEL_SIZE, VARIANT, ABLATION, CONFIG_NAME, MODEL_PATH, TRAIN_FILES,
# VAL_FILES, PROJECT_NAME, EXPERIMENT_NAME, CKPT_DIR, LOGGER, GPUS_PER_NODE, NNODES); extra arguments are
# Hydra overrides appended last. DRY_RUN=1 prints the submit command and runs nothing.
set -euo pipefail

# Ray dashboard address of the running cluster (ray job submit's --address).
RAY_ADDRESS=${RAY_ADDRESS:-http://127.0.0.1:8265}
# The checkout on the cluster nodes (the job's entry point runs there; default: this checkout).
REPO_DIR=${REPO_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# Cluster shape: 2 nodes x 8 GPUs by default for a multi-node run (the paper used 4 GPUs on one node).
NNODES=${NNODES:-2}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
# Submission id (ray job status/logs/stop take it); empty = Ray picks one.
SUBMISSION_ID=${SUBMISSION_ID:-}
DRY_RUN=${DRY_RUN:-0}
RAY=${RAY:-ray}

forward=("NNODES=${NNODES}" "GPUS_PER_NODE=${GPUS_PER_NODE}")
for name in MODEL_SIZE VARIANT ABLATION CONFIG_NAME MODEL_PATH TRAIN_FILES VAL_FILES PROJECT_NAME EXPERIMENT_NAME CKPT_DIR \
  LOGGER PYTHON; do
  if [[ -n "${!name:-}" ]]; then
    forward+=("${name}=${!name}")
  fi
done

submit=("${RAY}" job submit --address "${RAY_ADDRESS}")
if [[ -n "${SUBMISSION_ID}" ]]; then
  submit+=(--submission-id "${SUBMISSION_ID}")
fi
submit+=(-- env "${forward[@]}" bash -c 'cd "$1" && shift && exec bash examples/grpo/run_grpo.sh "$@"' run_grpo "${REPO_DIR}" "$@")

if [[ "${DRY_RUN}" == 1 ]]; then
  printf '%q ' "${submit[@]}"
  echo
  exit 0
fi
exec "${submit[@]}"
