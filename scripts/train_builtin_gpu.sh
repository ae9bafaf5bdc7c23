#!/usr/bin/env bash
# The GPU recipe for the builtin model: one H100/H200 with ~16 CPU cores, 7 minutes of training.
# Usage: OUT=/path/to/results bash scripts/train_builtin_gpu.sh   (OUT gets the model, the log and the console output)
# The multi-key fine-tune of that model: RECIPE=gpu-keys INIT_FROM=path/to/model MINUTES=3.5 SMOKE=0 OUT=... bash ...
# Data is made by 14 worker processes (the GPU waits on them, not the reverse); the schedule runs on wall-clock time.
set -uo pipefail
export PYTHONUNBUFFERED=1
PY=${PY:-python3}
OUT=${OUT:?set OUT to a results folder}
W=${WORK:-/tmp/builtin_gpu}
nvidia-smi -L
$PY -c "import torch; print(torch.__version__, torch.cuda.get_device_name())" || exit 2
# a 6-second smoke run first, so a broken environment costs seconds, not the lease
[ "${SMOKE:-1}" = 0 ] || $PY scripts/train_builtin.py --tiny --device cuda --workers 2 --minutes 0.1 --work /tmp/builtin_smoke \
    --out /tmp/builtin_smoke/out --quiet >"$OUT/smoke.out" 2>&1 || { tail -30 "$OUT/smoke.out"; exit 3; }
echo "smoke run ok"
mkdir -p "$W/tokenizer"
cp src/ctxops/models/builtin/tokenizer.json src/ctxops/models/builtin/tokenizer_config.json "$W/tokenizer/"
INIT=()
[ -z "${INIT_FROM:-}" ] || INIT=(--init-from "$INIT_FROM")
timeout "${LIMIT_S:-530}" $PY scripts/train_builtin.py --recipe "${RECIPE:-gpu}" "${INIT[@]}" --device cuda --workers "${WORKERS:-14}" \
    --minutes "${MINUTES:-7}" --shard-mb 12 --work "$W" --out "$W/model" --quiet --final-eval "${FINAL_EVAL:-20}" \
    >"$OUT/train.out" 2>&1
echo "train rc=$?"
cp "$W/log.jsonl" "$OUT/"
mkdir -p "$OUT/model"
cp "$W"/model/config.json "$W"/model/generation_config.json "$W"/model/model* "$OUT/model/"
grep -v "ans_loss" "$OUT/train.out" | tail -30
tail -3 "$OUT/train.out"
