#!/usr/bin/env bash
# `tune check --device cuda`: the device plan of `tune train --device cuda`
# against what the device reported (cudaMemGetInfo, the whole process with
# its CUDA context) in the benchmark runs of bench/RESULTS.md (H200 and H100,
# CUDA 13, 2026-11-28; bench/gpu_train_bench.sh remakes them): sequence 2048,
# batch 4, LoRA r = 16 on all seven projections, with 0 or all layers
# checkpointed, and the layers the trainer chose to fit PEFT's leanest
# allocation. The issue's bar: the plan within 5% of the measured peak.
set -u
T=${TUNE:?}
fail() { echo "FAIL: $*"; exit 1; }
python3 - "$T" <<'P' || exit 1
import json, subprocess, sys
tune = sys.argv[1]
GiB = 2**30
# preset, checkpointed layers -> GiB in use as measured; budgets -> layers the trainer chose
measured = {
    "llama-3.2-1b-instruct": ({0: 9.97, 16: 4.57}, (14.80, 0)),
    "llama-3.2-3b-instruct": ({0: 20.90, 5: 19.25, 28: 9.49}, (19.47, 5)),
    "qwen2.5-1.5b-instruct": ({0: 15.18, 28: 5.65}, (17.76, 0)),
    "gemma-2-2b-it": ({0: 20.16, 26: 8.13}, (33.56, 0)),
    "mistral-7b-instruct-v0.3": ({32: 18.54}, (19.16, 32)),
}
worst = 0
for preset, (points, (budget, chosen)) in measured.items():
    out = subprocess.run([tune, "check", preset, "--device", "cuda", "--batch", "4", "--max-seq-length", "2048", "--rank", "16",
                          "--budget", "%.2fG" % budget, "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    g = json.loads(out.stdout)["gpu_plan"]
    L = g["layers"]
    for ck, gib in points.items():
        total = g["weights_bytes"] + g["lora_bytes"] + ck * g["checkpointed_per_layer_bytes"] + (L - ck) * g["saved_per_layer_bytes"] \
            + g["shared_bytes"] + (g["scratch_bytes"] if ck else 0) + g["context_bytes"]
        err = abs(total / GiB - gib) / gib
        worst = max(worst, err)
        print("%-26s %2d of %2d checkpointed: plan %6.2f GiB, measured %6.2f GiB (%.2f%%)" % (preset, ck, L, total / GiB, gib, 100 * err))
    print("%-26s within %.2f GiB: plan checkpoints %d layers, the trainer chose %d" % (preset, budget, g["checkpointed_to_fit"], chosen))
    assert g["checkpointed_to_fit"] == chosen, "the plan's choice differs from the device's"
print("largest difference %.2f%% (tolerance 5%%)" % (100 * worst))
assert worst <= 0.05, "plan off by more than 5%"
P
# without a budget no fit line; a budget below the weights does not fit
$T check llama-3.2-3b-instruct --device cuda --budget 4G | grep -q "does not fit even with every layer checkpointed" || fail "a 4G budget should not fit"
$T check llama-3.2-3b-instruct --device tpu 2>&1 | grep -q "expected cpu or cuda" || fail "bad --device accepted"
echo "gpu_plan: ok"
