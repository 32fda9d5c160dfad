#!/usr/bin/env bash
# One GPU training run of the demo model, sized for a short lease of one CUDA GPU (run from the repo root).
#   bash tools/train-demo-model/gpu-train.sh OUT_DIR MINUTES [extra train.py args, e.g. --resume --ckpt FILE]
# Writes OUT_DIR/train.log and a weights-only checkpoint as OUT_DIR/weights.pt.part* (<= 15 MiB each,
# rewritten every 1.5 minutes, so a run cut short still leaves the last one). Rebuild and export here:
#   cat OUT_DIR/weights.pt.part* > tools/train-demo-model/ckpt/latest.pt && python tools/train-demo-model/export.py
set -euo pipefail
out=${1:?OUT_DIR}; minutes=${2:?MINUTES}; shift 2
export PYTHONUNBUFFERED=1 OMP_WAIT_POLICY=PASSIVE
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
workers=$(( $(nproc) > 4 ? $(nproc) - 4 : 1 ))
python3 tools/train-demo-model/train.py --device cuda --amp bf16 --workers "$workers" \
    --d 384 --layers 6 --B 128 --T 256 --lr 2e-3 --lr-final 1e-4 --decay-over-run --warmup 200 \
    --minutes "$minutes" --eval-every 200 --ckpt-minutes 1.5 \
    --ckpt /tmp/demo-ckpt/latest.pt --parts-dir "$out" "$@" 2>&1 | tee "$out/train.log"
