#!/usr/bin/env bash
# Launch the trainer on one node with torchrun.
#
# Usage: trainer/launch/torchrun.sh CONFIG [NPROC]
#   CONFIG  training config (YAML), e.g. recipes/train/cap.yaml
#   NPROC   processes (GPUs) to start; default "auto" (one per GPU, or per CPU
#           when there is no GPU)
#
# The trainer (`python -m trainer CONFIG`, or `aurora train CONFIG` for a single
# process) shards the model with FSDP (`fully_shard`) when the world size is
# above 1. The process group uses NCCL on NVIDIA GPUs and RCCL on AMD ROCm GPUs
# (PyTorch names both backends `nccl`), and gloo on CPU.
# Re-running the same command resumes from the latest checkpoint.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
    echo "usage: $0 CONFIG [NPROC]" >&2
    exit 2
fi
CONFIG="$1"
NPROC="${2:-}"

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

if [[ -x .venv/bin/torchrun ]]; then
    TORCHRUN=.venv/bin/torchrun
else
    TORCHRUN=torchrun
fi

exec "$TORCHRUN" --standalone --nproc-per-node "${NPROC:-auto}" -m trainer "$CONFIG"
