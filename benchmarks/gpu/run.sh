#!/usr/bin/env bash
# The one entry point on the GPU host (docs/gpu_run.md has the sequence of device calls):
#
#   bash benchmarks/gpu/run.sh facts          # Python, torch, GPU, disk, memory, pip freeze of the host
#   bash benchmarks/gpu/run.sh install N      # chunk set N of the carried wheels (the last one installs)
#   bash benchmarks/gpu/run.sh grpo           # GRPO 3 steps, checkpoint at 2, resume for 3 (hf rollout)
#   bash benchmarks/gpu/run.sh sft            # R-SFT, 2 steps of examples/sft/run_sft.sh under torchrun
#   bash benchmarks/gpu/run.sh smoke          # 2 steps of run_grpo.sh with vLLM (a host with verl's GPU stack)
#
# DEVICE=cuda (default) or cpu (the CPU rehearsal on the tiny model); PYTHON picks the interpreter
# (default python3). Each command prints one JSON line last; `--help` after a command shows its options.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
command=${1:-}
shift || true
case "${command}" in
  facts)
    # What the next carrier run can subtract (host_packages.txt) and what the checkpoint has room for.
    "${PYTHON}" -c 'import sys, torch; print("python", sys.version.split()[0]); print("torch", torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else "(no CUDA device)")'
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    df -h "${GPU_REPO}" /tmp || true
    free -g || true
    nproc
    "${PYTHON}" -m pip list --format=freeze 2>/dev/null
    ;;
  install) exec "${PYTHON}" "${GPU_REPO}/benchmarks/gpu/host_install.py" "$@" ;;
  grpo) exec "${PYTHON}" "${GPU_REPO}/benchmarks/gpu/grpo_resume.py" "$@" ;;
  sft) exec "${PYTHON}" "${GPU_REPO}/benchmarks/gpu/sft_steps.py" "$@" ;;
  smoke) exec "${PYTHON}" "${GPU_REPO}/benchmarks/gpu/smoke_vllm.py" "$@" ;;
  -h | --help | *)
    sed -n '2,11p' "$0" >&2
    exit 2
    ;;
esac
