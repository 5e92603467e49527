#!/bin/bash
# gpu_train_bench.sh - issue 7's benchmark in one device call: tune's LoRA
# step on the GPU (bench/gpu_train_bench.c) and transformers + PEFT
# (../shared/bench/hf_peft_baseline.py) on the same card, in the same run, on
# random-initialised models with the real configs (made here with `tune init
# PRESET`; nothing big is committed). Sequence 2048, batch 4, r = 16, all
# seven projections. One JSON line per run, then a table.
#
# usage: bench/gpu_train_bench.sh [MODELS...]   (default: the issue's five)
#   TUNE=path/to/tune BENCH=path/to/gpu_train_bench BASELINE=path/to/hf_peft_baseline.py
#   SEQ=2048 BS=4 STEPS=8 WORK=/tmp/tune-bench
# Built with `make CUDA=1 tune build/release-cuda/bench/gpu_train_bench` on a
# machine with nvcc and tune's libraries (the GPU machine lacks cJSON, libyaml,
# PCRE2 and utf8proc: carry them with the binaries and set LD_LIBRARY_PATH).
set -u
TUNE=${TUNE:-./tune}
BENCH=${BENCH:-build/release-cuda/bench/gpu_train_bench}
BASELINE=${BASELINE:-../shared/bench/hf_peft_baseline.py}
SEQ=${SEQ:-2048} BS=${BS:-4} STEPS=${STEPS:-8} WORK=${WORK:-/tmp/tune-bench}
MODELS=("$@")
[ ${#MODELS[@]} -eq 0 ] && MODELS=(llama-3.2-1b llama-3.2-3b qwen2.5-1.5b gemma-2-2b mistral-7b)
preset() {
    case $1 in
    llama-3.2-1b) echo llama-3.2-1b-instruct ;; llama-3.2-3b) echo llama-3.2-3b-instruct ;;
    qwen2.5-0.5b) echo qwen2.5-0.5b-instruct ;; qwen2.5-1.5b) echo qwen2.5-1.5b-instruct ;;
    gemma-2-2b) echo gemma-2-2b-it ;; gemma-2-9b) echo gemma-2-9b-it ;; mistral-7b) echo mistral-7b-instruct-v0.3 ;;
    *) echo "$1" ;;
    esac
}
mkdir -p "$WORK"
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
for m in "${MODELS[@]}"; do
    dir=$WORK/$m
    [ -f "$dir/config.json" ] || "$TUNE" init "$(preset "$m")" --out "$dir" >/dev/null || { echo "init $m failed"; continue; }
    # the peer first, at its fastest and its leanest settings
    PYTHONUNBUFFERED=1 python3 "$BASELINE" "$m" "$SEQ" "$BS" --steps "$STEPS" 2>/dev/null | grep '^{' | tee -a "$RESULTS"
    lean=$(PYTHONUNBUFFERED=1 python3 "$BASELINE" "$m" "$SEQ" "$BS" --steps "$STEPS" --ckpt 2>/dev/null | grep '^{' | tee -a "$RESULTS")
    echo "$lean"
    # ours: as few layers checkpointed as fit in what PEFT's leanest run
    # allocated (whole process, context included), then every layer checkpointed
    budget=$(python3 -c "import json,sys; r=json.loads(sys.argv[1]); print(r.get('peak_gib', 0))" "$lean" 2>/dev/null || echo 0)
    if [ "${budget:-0}" != "0" ]; then
        "$BENCH" "$dir" "$m" "$SEQ" "$BS" --steps "$STEPS" --ckpt auto --budget-gib "$budget" | tee -a "$RESULTS"
    else
        "$BENCH" "$dir" "$m" "$SEQ" "$BS" --steps "$STEPS" --ckpt auto | tee -a "$RESULTS"
    fi
    "$BENCH" "$dir" "$m" "$SEQ" "$BS" --steps "$STEPS" --ckpt all | tee -a "$RESULTS"
    rm -rf "$dir"
done
python3 - "$RESULTS" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print(f"{'model':14} {'impl':8} {'ckpt':>5} {'tok/s':>8} {'GiB':>7} {'MFU':>6}")
for r in rows:
    ck = r.get("ckpt_layers", r.get("ckpt"))
    mem = r.get("device_used_gib", r.get("peak_gib", float("nan")))
    tok = r.get("tok_s", float("nan")) if not r.get("oom") else float("nan")
    mfu = r.get("mfu", float("nan"))
    print(f"{r['model']:14} {r['impl']:8} {str(ck):>5} {tok:8.0f} {mem:7.2f} {mfu:6.3f}" + ("  OOM" if r.get("oom") else ""))
EOF
