#!/usr/bin/env bash
# R-SFT of Qwen2.5-VL-3B/7B-Instruct on the reasoning corpus with verl's SFT trainer (torchrun, FSDP2).
#
# Paper values live in recipe/guardreasoner_vl/config/guardreasoner_vl_sft.yaml (lr 5e-5 cosine, 3 epochs,
# global batch 192, max length 2048, bf16; as the released run: vision tower and projector frozen, weight
# decay 0); this script sets paths, the model size and the cluster shape. Extra Hydra overrides given as
# arguments are appended last.
#
#   MODEL_SIZE=7b GPUS_PER_NODE=8 bash examples/sft/run_sft.sh
#   # two nodes: run on each node with its NODE_RANK
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 bash examples/sft/run_sft.sh
#   # validate the composed config on any machine, run nothing (CHECK_CONFIG=full: also this machine's files, packages)
#   CHECK_CONFIG=1 bash examples/sft/run_sft.sh
#   # a few steps on a CPU (tiny model, tests): DEVICE=cpu
#
# When it finishes, make the HF folder GRPO starts from:
#   guardreasoner-vl export-hf --checkpoint-dir "$CKPT_DIR" -o "$SFT_MODEL_DIR"
#
# Local paths are made absolute before torchrun starts (examples/paths.sh): on several nodes each rank writes its
# checkpoint shards under CKPT_DIR, which must then be the same shared folder everywhere.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../paths.sh"

# ---- model and data ---------------------------------------------------------------------------------
MODEL_SIZE=${MODEL_SIZE:-3b}
case "${MODEL_SIZE}" in
  3b) DEFAULT_MODEL=Qwen/Qwen2.5-VL-3B-Instruct ;;
  7b) DEFAULT_MODEL=Qwen/Qwen2.5-VL-7B-Instruct ;;
  *) echo "run_sft.sh: MODEL_SIZE must be 3b or 7b, got '${MODEL_SIZE}'" >&2; exit 2 ;;
esac
MODEL_PATH=${MODEL_PATH:-${DEFAULT_MODEL}}
TRAIN_FILES=${TRAIN_FILES:-data/sft/train.parquet}
VAL_FILES=${VAL_FILES:-null}

# ---- run identity and outputs ---------------------------------------------------------------------
PROJECT_NAME=${PROJECT_NAME:-guardreasoner-vl}
EXPERIMENT_NAME=${EXPERIMENT_NAME:-r-sft-${MODEL_SIZE}}
CKPT_DIR=${CKPT_DIR:-checkpoints/${PROJECT_NAME}/${EXPERIMENT_NAME}}
LOGGER=${LOGGER:-"['console']"}
# Checkpoints kept in CKPT_DIR (a 7B one with optimizer states is about 100 GB); 0 = keep all.
MAX_CKPT_TO_KEEP=${MAX_CKPT_TO_KEEP:-2}

# ---- cluster shape (torchrun rendezvous; one process per GPU) ------------------------------------
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29500}

# ---- hyper-parameters (paper values; the yaml has the same defaults) -----------------------------
TRAIN_BATCH_SIZE=${TRAIN_BATCH_SIZE:-192}
LR=${LR:-5e-5}
EPOCHS=${EPOCHS:-3}
MAX_LENGTH=${MAX_LENGTH:-2048}
# Token budget per GPU per micro-batch (dynamic batching); lower it if a step runs out of memory.
MAX_TOKEN_LEN_PER_GPU=${MAX_TOKEN_LEN_PER_GPU:-8192}
# FSDP offload (docs/gpu_guide.md). OPTIMIZER_OFFLOAD=auto turns it on where the sharded states and the activations
# would not fit 80 GB GPUs: 7B on fewer than 4 GPUs, 3B on 1; True / False force it. PARAM_OFFLOAD only if that is not enough.
PARAM_OFFLOAD=${PARAM_OFFLOAD:-False}
OPTIMIZER_OFFLOAD=${OPTIMIZER_OFFLOAD:-auto}

# ---- launcher ----------------------------------------------------------------------------------------
# cuda (default) or cpu: the recipe's CPU backend, for smoke tests on the tiny model.
DEVICE=${DEVICE:-cuda}
# 1 = compose the config with these overrides and validate it (any machine, seconds), then exit;
# full = also check this machine as the entry point will (model folder, data files, flash-attn).
CHECK_CONFIG=${CHECK_CONFIG:-0}
# 1 = print the overrides (one per line), then exit.
PRINT_OVERRIDES=${PRINT_OVERRIDES:-0}
PYTHON=${PYTHON:-python}
TORCHRUN=${TORCHRUN:-torchrun}

# ---- paths: absolute before torchrun starts (examples/paths.sh) --------------------------------------
MODEL_PATH=$(abs_model_path "${MODEL_PATH}")
TRAIN_FILES=$(abs_path_list "${TRAIN_FILES}")
VAL_FILES=$(abs_path_list "${VAL_FILES}")
CKPT_DIR=$(abs_path "${CKPT_DIR}")

# ---- memory: optimizer offload (auto: the 80 GB rule above) --------------------------------------------
gpus=$((GPUS_PER_NODE * NNODES))
case "${OPTIMIZER_OFFLOAD}" in
  auto)
    OPTIMIZER_OFFLOAD=False
    if [[ "${DEVICE}" == cuda && (("${MODEL_SIZE}" == 7b && ${gpus} -lt 4) || ("${MODEL_SIZE}" == 3b && ${gpus} -lt 2)) ]]; then
      OPTIMIZER_OFFLOAD=True
      echo "run_sft.sh: ${MODEL_SIZE} on ${gpus} GPU(s): optimizer offload is on so states and activations fit 80 GB" \
        "GPUs (OPTIMIZER_OFFLOAD=False turns it off)" >&2
    fi
    ;;
  True | False) ;;
  *) echo "run_sft.sh: OPTIMIZER_OFFLOAD must be auto, True or False, got '${OPTIMIZER_OFFLOAD}'" >&2; exit 2 ;;
esac
if [[ "${MAX_CKPT_TO_KEEP}" == 0 ]]; then keep=null; else keep=${MAX_CKPT_TO_KEEP}; fi

overrides=(
  "data.train_files=${TRAIN_FILES}"
  "data.val_files=${VAL_FILES}"
  "data.train_batch_size=${TRAIN_BATCH_SIZE}"
  "data.max_length=${MAX_LENGTH}"
  "data.max_token_len_per_gpu=${MAX_TOKEN_LEN_PER_GPU}"
  "model.path=${MODEL_PATH}"
  "optim.lr=${LR}"
  "engine.param_offload=${PARAM_OFFLOAD}"
  "engine.optimizer_offload=${OPTIMIZER_OFFLOAD}"
  "trainer.total_epochs=${EPOCHS}"
  "trainer.project_name=${PROJECT_NAME}"
  "trainer.experiment_name=${EXPERIMENT_NAME}"
  "trainer.default_local_dir=${CKPT_DIR}"
  "trainer.max_ckpt_to_keep=${keep}"
  "trainer.logger=${LOGGER}"
  "trainer.nnodes=${NNODES}"
  "trainer.n_gpus_per_node=${GPUS_PER_NODE}"
)

if [[ "${DEVICE}" == cpu ]]; then
  # The CPU backend (docs/cpu_backend.md) is selected by verl's platform variable in every process.
  export VERL_PLATFORM=cpu
  overrides+=(
    "trainer.device=cpu"
    # flash-attention does not exist on CPU; padding removal needs its varlen kernels.
    "+model.override_config.attn_implementation=sdpa"
    "model.use_remove_padding=False"
    # torch.compile costs minutes of compilation on CPU for no gain.
    "engine.use_torch_compile=False"
    # CPUs have no fast bf16 path: compute in fp32.
    "+engine.mixed_precision.param_dtype=fp32"
    # DataLoader workers would fight the trainer for the few cores.
    "data.num_workers=0"
  )
elif [[ "${DEVICE}" != cuda ]]; then
  echo "run_sft.sh: DEVICE must be cuda or cpu, got '${DEVICE}'" >&2
  exit 2
fi

if [[ "${PRINT_OVERRIDES}" == 1 ]]; then
  printf '%s\n' "${overrides[@]}" "$@"
  exit 0
fi

if [[ "${CHECK_CONFIG}" != 0 ]]; then
  case "${CHECK_CONFIG}" in
    1) check=() ;;
    full) check=(--this-machine) ;;
    *) echo "run_sft.sh: CHECK_CONFIG must be 0, 1 or full, got '${CHECK_CONFIG}'" >&2; exit 2 ;;
  esac
  exec "${PYTHON}" -m cli check-config "${check[@]}" sft "${overrides[@]}" "$@"
fi

exec "${TORCHRUN}" \
  --nnodes="${NNODES}" \
  --node_rank="${NODE_RANK}" \
  --nproc_per_node="${GPUS_PER_NODE}" \
  --master_addr="${MASTER_ADDR}" \
  --master_port="${MASTER_PORT}" \
  -m recipe.guardreasoner_vl.main_sft \
  "${overrides[@]}" \
  "$@"
