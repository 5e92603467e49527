#!/usr/bin/env bash
# `make check-gpu`, third part: `tune train --device cuda` end to end on the
# llama-wide fixture (head dim 64, bf16) and the sample chat data, against the
# same run on the CPU: the per-step training losses agree within bf16
# tolerance (2e-2 relative: bf16 weights and activations on the device, fp32
# on the CPU), the validation loss falls, and 6 steps + resume + 6 steps equal
# 12 steps (the device kernels are deterministic: no atomics in the products
# the adapter depends on).
set -u
T=${TUNE:-./tune}
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
M=tests/fixtures/llama-wide D=tests/data/chat
common=(--data $D --lr 5e-3 --batch 2 --rank 8 --alpha 16 --seed 3 --val-every 6 --val-batches 4 --max-seq-length 256)
$T train $M "${common[@]}" --out "$W/cpu" --iters 12 --save-every 6 2> "$W/cpu.err" || fail "cpu train: $(tail -3 "$W/cpu.err")"
$T train $M "${common[@]}" --device cuda --out "$W/gpu" --iters 12 --save-every 6 2> "$W/gpu.err" || fail "gpu train: $(tail -3 "$W/gpu.err")"
grep -E "on NVIDIA|device memory" "$W/gpu.err"
python3 - "$W/cpu/log.jsonl" "$W/gpu/log.jsonl" <<'P' || exit 1
import json, sys
def losses(p):
    r = [json.loads(l) for l in open(p)]
    return [x["train_loss"] for x in r if "train_loss" in x], [x["val_loss"] for x in r if "val_loss" in x]
tc, vc = losses(sys.argv[1]); tg, vg = losses(sys.argv[2])
worst = max(abs(a - b) / abs(a) for a, b in zip(tc, tg))
print("train losses cpu:", " ".join("%.4f" % x for x in tc))
print("train losses gpu:", " ".join("%.4f" % x for x in tg))
print("largest relative difference %.3e (tolerance 2e-2); validation gpu %s" % (worst, vg))
assert len(tc) == len(tg) == 12 and worst < 2e-2, "losses differ"
assert vg[-1] < vg[0], "validation loss did not fall on the device"
P
$T train $M "${common[@]}" --device cuda --out "$W/r" --iters 6 --save-every 6 2> "$W/r1.err" || fail "gpu 6: $(tail -3 "$W/r1.err")"
$T train $M "${common[@]}" --device cuda --out "$W/r" --iters 12 --save-every 6 --resume "$W/r/checkpoints/0000006" 2> "$W/r2.err" || fail "gpu resume: $(tail -3 "$W/r2.err")"
cmp "$W/gpu/adapter_model.safetensors" "$W/r/adapter_model.safetensors" && echo "resume on the device: 6 + 6 steps equal 12, bit for bit" || fail "6 + resume + 6 differ from 12 on the device"
echo "train_gpu: ok"
