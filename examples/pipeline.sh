#!/usr/bin/env bash
# GuardReasoner-VL end to end, as in the paper:
#   data (R-SFT parquet) -> sft (R-SFT + HF export) -> mine (hard samples, k=4) -> split (12K pool, 80/20)
#   -> concat (safety-aware concatenation + RL parquet) -> grpo (GRPO + HF export) -> eval (F1 tables)
#
# Every step prints its commands before running them. A step whose outputs all exist is skipped
# (FORCE=1 redoes it); the long steps resume on their own when rerun (verl resumes SFT/GRPO from the
# last checkpoint, mining and evaluation skip finished ids). Choose steps with STEPS=sft,grpo,... or
# SKIP_<STEP>=1. DRY_RUN=1 prints every command and runs none of them, except that it composes and
# validates every Hydra config it would launch (guardreasoner-vl check-config).
#
#   VLTRAIN=/data/GuardReasoner-VLTrain BENCHMARKS=/data/GuardReasoner-VLTest MODEL_SIZE=7b bash examples/pipeline.sh
#   DRY_RUN=1 bash examples/pipeline.sh
#   STEPS=grpo,eval VARIANT=eco bash examples/pipeline.sh
#
# Multi-node: R-SFT is torchrun, so run examples/sft/run_sft.sh on every other node (same settings, its
# NODE_RANK) while this script runs NODE_RANK=0; GRPO uses Ray: start the cluster first (docs/gpu_guide.md).
# docs/pipeline.md lists every variable.
set -euo pipefail

# ---- inputs ------------------------------------------------------------------------------------------
# GuardReasoner-VLTrain folder (text.json, image.json, text_image.json and images/).
VLTRAIN=${VLTRAIN:-data/GuardReasoner-VLTrain}
# Raw benchmark folder (<Name>.json + images/<Name>/) for build-eval.
BENCHMARKS=${BENCHMARKS:-data/GuardReasoner-VLTest}
# 3b or 7b; the base model is Qwen2.5-VL-<size>-Instruct unless BASE_MODEL says otherwise.
MODEL_SIZE=${MODEL_SIZE:-3b}
case "${MODEL_SIZE}" in
  3b) BASE_MODEL=${BASE_MODEL:-Qwen/Qwen2.5-VL-3B-Instruct} ;;
  7b) BASE_MODEL=${BASE_MODEL:-Qwen/Qwen2.5-VL-7B-Instruct} ;;
  *) echo "pipeline.sh: MODEL_SIZE must be 3b or 7b, got '${MODEL_SIZE}'" >&2; exit 2 ;;
esac
# standard (beta = 1) or eco (beta = 1/6: shorter reasoning).
VARIANT=${VARIANT:-standard}
case "${VARIANT}" in
  standard | eco) ;;
  *) echo "pipeline.sh: VARIANT must be standard or eco, got '${VARIANT}'" >&2; exit 2 ;;
esac

# ---- outputs -----------------------------------------------------------------------------------------
RUN_DIR=${RUN_DIR:-runs/guardreasoner-vl-${MODEL_SIZE}}
SFT_DATA=${SFT_DATA:-${RUN_DIR}/data/sft_train.parquet}
# R-SFT rows longer than this many tokens (the SFT config's data.max_length) are dropped before training.
SFT_MAX_LENGTH=${SFT_MAX_LENGTH:-2048}
SFT_CKPT_DIR=${SFT_CKPT_DIR:-${RUN_DIR}/checkpoints/r-sft}
SFT_MODEL=${SFT_MODEL:-${RUN_DIR}/models/r-sft}
MINE_DIR=${MINE_DIR:-${RUN_DIR}/mine}
SPLIT_DIR=${SPLIT_DIR:-${RUN_DIR}/split}
RL_DIR=${RL_DIR:-${RUN_DIR}/rl}
GRPO_CKPT_DIR=${GRPO_CKPT_DIR:-${RUN_DIR}/checkpoints/grpo-${VARIANT}}
GRPO_MODEL=${GRPO_MODEL:-${RUN_DIR}/models/grpo-${VARIANT}}
EVAL_DATA=${EVAL_DATA:-${RUN_DIR}/eval_data}
EVAL_MODEL=${EVAL_MODEL:-${GRPO_MODEL}}
EVAL_DIR=${EVAL_DIR:-${RUN_DIR}/eval/$(basename "${EVAL_MODEL}")}

# ---- cluster -----------------------------------------------------------------------------------------
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
NNODES=${NNODES:-1}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29500}

# ---- step settings (paper values) --------------------------------------------------------------------
# Inference backend of mining and evaluation: vllm (GPU), hf (transformers) or openai (a server).
MINE_BACKEND=${MINE_BACKEND:-vllm}
MINE_K=${MINE_K:-4}
RL_POOL_SIZE=${RL_POOL_SIZE:-12000}
VAL_FRACTION=${VAL_FRACTION:-0.2}
CONCAT_FRACTION=${CONCAT_FRACTION:-0.2}
SEED=${SEED:-0}
EVAL_BACKEND=${EVAL_BACKEND:-vllm}

# ---- extra arguments per step (word-split; e.g. a CPU smoke run on a tiny model) --------------------
# Hydra overrides appended to the launch scripts, and options appended to the commands.
SFT_ARGS=${SFT_ARGS:-}
GRPO_ARGS=${GRPO_ARGS:-}
MINE_ARGS=${MINE_ARGS:-}
EVAL_ARGS=${EVAL_ARGS:-}
read -ra sft_args <<< "${SFT_ARGS}"
read -ra grpo_args <<< "${GRPO_ARGS}"
read -ra mine_args <<< "${MINE_ARGS}"
read -ra eval_args <<< "${EVAL_ARGS}"

# ---- control -----------------------------------------------------------------------------------------
ALL_STEPS=(data sft mine split concat grpo eval)
STEPS=${STEPS:-$(IFS=,; echo "${ALL_STEPS[*]}")}
FORCE=${FORCE:-0}
DRY_RUN=${DRY_RUN:-0}
PYTHON=${PYTHON:-python}
GRV=${GRV:-guardreasoner-vl}
SFT_SCRIPT=${SFT_SCRIPT:-examples/sft/run_sft.sh}
GRPO_SCRIPT=${GRPO_SCRIPT:-examples/grpo/run_grpo.sh}
# How GRPO starts: local (this node starts Ray) or ray-job (submit to a running cluster at RAY_ADDRESS).
if [[ "${NNODES}" == 1 ]]; then GRPO_LAUNCH=${GRPO_LAUNCH:-local}; else GRPO_LAUNCH=${GRPO_LAUNCH:-ray-job}; fi
case "${GRPO_LAUNCH}" in
  local) GRPO_LAUNCHER=${GRPO_SCRIPT} ;;
  ray-job) GRPO_LAUNCHER=${GRPO_SUBMIT_SCRIPT:-examples/grpo/submit_ray_job.sh} ;;
  *) echo "pipeline.sh: GRPO_LAUNCH must be local or ray-job, got '${GRPO_LAUNCH}'" >&2; exit 2 ;;
esac

# ---- helpers -----------------------------------------------------------------------------------------
# Print a command (shell-quoted, with the environment assignments that precede it), then run it
# unless DRY_RUN=1.  Usage: run [VAR=value ...] -- cmd args...
run() {
  local env_assign=()
  while [[ $# -gt 0 && "$1" != -- ]]; do env_assign+=("$1"); shift; done
  shift
  local shown
  shown="$(printf '%q ' "${env_assign[@]}" "$@")"
  echo "+ ${shown% }"
  if [[ "${DRY_RUN}" != 1 ]]; then
    env "${env_assign[@]}" "$@"
  fi
}

# Compose and validate a launch's config even in a dry run (the launch scripts' CHECK_CONFIG mode).
check_launch() {
  echo "# check config: $*"
  env CHECK_CONFIG=1 "$@"
}

selected() {
  local name=$1 upper
  upper=$(echo "${name}" | tr '[:lower:]' '[:upper:]')
  local skip_var="SKIP_${upper}"
  [[ "${!skip_var:-0}" == 1 ]] && return 1
  [[ ",${STEPS}," == *",${name},"* ]]
}

# step NAME OUTPUT... : decide whether NAME runs; prints the decision.
step() {
  local name=$1; shift
  if ! selected "${name}"; then
    echo "== ${name}: skipped (not in STEPS, or SKIP_ set)"
    return 1
  fi
  local missing=0 out
  for out in "$@"; do [[ -e "${out}" ]] || missing=1; done
  if [[ ${missing} == 0 && "${FORCE}" != 1 ]]; then
    echo "== ${name}: skipped, outputs exist ($*); FORCE=1 redoes it"
    return 1
  fi
  echo "== ${name}"
  return 0
}

for name in ${STEPS//,/ }; do
  [[ " ${ALL_STEPS[*]} " == *" ${name} "* ]] || { echo "pipeline.sh: unknown step '${name}' (steps: ${ALL_STEPS[*]})" >&2; exit 2; }
done

# Settings both launch scripts get from here.
cluster_env=(
  "MODEL_SIZE=${MODEL_SIZE}"
  "GPUS_PER_NODE=${GPUS_PER_NODE}"
  "NNODES=${NNODES}"
  "PYTHON=${PYTHON}"
)
sft_env=(
  "${cluster_env[@]}"
  "NODE_RANK=0"
  "MASTER_ADDR=${MASTER_ADDR}"
  "MASTER_PORT=${MASTER_PORT}"
  "MODEL_PATH=${BASE_MODEL}"
  "TRAIN_FILES=${SFT_DATA}"
  "CKPT_DIR=${SFT_CKPT_DIR}"
)
grpo_env=(
  "${cluster_env[@]}"
  "VARIANT=${VARIANT}"
  "MODEL_PATH=${SFT_MODEL}"
  "TRAIN_FILES=${RL_DIR}/train.parquet"
  "VAL_FILES=${RL_DIR}/val.parquet"
  "CKPT_DIR=${GRPO_CKPT_DIR}"
)

# ---- 1. data: the R-SFT parquet ----------------------------------------------------------------------
if step data "${SFT_DATA}"; then
  # build-sft estimates tokens; check-sft-lengths measures every row as verl will and drops the rows
  # longer than the SFT max length (truncation: error would stop R-SFT on the first one).
  run -- "${GRV}" build-sft "${VLTRAIN}" -o "${SFT_DATA%.parquet}.all.parquet"
  run -- "${GRV}" check-sft-lengths "${SFT_DATA%.parquet}.all.parquet" --model "${BASE_MODEL}" \
    --max-length "${SFT_MAX_LENGTH}" -o "${SFT_DATA}" --report "${SFT_DATA%.parquet}.lengths.json"
fi

# ---- 2. sft: R-SFT, then the HF folder GRPO starts from ------------------------------------------------
if step sft "${SFT_MODEL}"; then
  [[ "${DRY_RUN}" == 1 ]] && check_launch "${sft_env[@]}" bash "${SFT_SCRIPT}" "${sft_args[@]}"
  run "${sft_env[@]}" -- bash "${SFT_SCRIPT}" "${sft_args[@]}"
  run -- "${GRV}" export-hf --checkpoint-dir "${SFT_CKPT_DIR}" -o "${SFT_MODEL}" --overwrite
fi

# ---- 3. mine: k generations per row, keep the rows no generation got right --------------------------
if step mine "${MINE_DIR}/report.json"; then
  run -- "${GRV}" mine "${VLTRAIN}" --backend "${MINE_BACKEND}" --model "${SFT_MODEL}" -k "${MINE_K}" \
    --seed "${SEED}" -o "${MINE_DIR}" "${mine_args[@]}"
fi

# ---- 4. split: sample the RL pool, train/val ---------------------------------------------------------
if step split "${SPLIT_DIR}/train.jsonl" "${SPLIT_DIR}/val.jsonl"; then
  run -- "${GRV}" split "${MINE_DIR}/pool.jsonl" --size "${RL_POOL_SIZE}" --val-fraction "${VAL_FRACTION}" \
    --seed "${SEED}" -o "${SPLIT_DIR}"
fi

# ---- 5. concat: safety-aware concatenation of training pairs, then the RL parquet --------------------
if step concat "${RL_DIR}/train.parquet" "${RL_DIR}/val.parquet"; then
  run -- "${GRV}" concat "${SPLIT_DIR}/train.jsonl" --fraction "${CONCAT_FRACTION}" --seed "${SEED}" \
    -o "${RL_DIR}/train_concat.jsonl"
  run -- "${GRV}" build-rl "${RL_DIR}/train_concat.jsonl" --split-name train -o "${RL_DIR}/train.parquet"
  run -- "${GRV}" build-rl "${SPLIT_DIR}/val.jsonl" --split-name val -o "${RL_DIR}/val.parquet"
fi

# ---- 6. grpo: online RL from the R-SFT model, then the HF folder for evaluation ---------------------
if step grpo "${GRPO_MODEL}"; then
  [[ "${DRY_RUN}" == 1 ]] && check_launch "${grpo_env[@]}" bash "${GRPO_SCRIPT}" "${grpo_args[@]}"
  run "${grpo_env[@]}" -- bash "${GRPO_LAUNCHER}" "${grpo_args[@]}"
  run -- "${GRV}" export-hf --checkpoint-dir "${GRPO_CKPT_DIR}" --component actor \
    -o "${GRPO_MODEL}" --overwrite
fi

# ---- 7. eval: the 14 benchmark/task pairs, F1 tables ---------------------------------------------------
if step eval "${EVAL_DIR}/results.json"; then
  if [[ ! -d "${EVAL_DATA}" || "${FORCE}" == 1 ]]; then
    run -- "${GRV}" build-eval "${BENCHMARKS}" -o "${EVAL_DATA}"
  fi
  run -- "${GRV}" evaluate --data-dir "${EVAL_DATA}" -o "${EVAL_DIR}" --backend "${EVAL_BACKEND}" \
    --model "${EVAL_MODEL}" "${eval_args[@]}"
fi

echo "pipeline.sh: done (${STEPS})$([[ "${DRY_RUN}" == 1 ]] && echo ', dry run: nothing was run')"
