#!/usr/bin/env bash
# The GPU checks from a bundle made on the development machine (`make CUDA=1
# gpu-bundle`): the GPU machine has nvcc, the CUDA libraries and OpenBLAS but
# not cJSON, libyaml, PCRE2 or utf8proc, so tune and the check programs are
# built here and carried with those libraries (device tool: carry
# build/gpu-bundle). Run from the repository root on the GPU machine:
#   bash tests/gpu/check_bundle.sh            # every check: ops, the training step, tune train
#   bash tests/gpu/check_bundle.sh bench [MODELS...]   # bench/gpu_train_bench.sh with the bundle's binaries
set -u
B=${BUNDLE:-build/gpu-bundle}
export LD_LIBRARY_PATH=$PWD/$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
if [ "${1:-}" = bench ]; then
    shift
    TUNE=$B/tune BENCH=$B/gpu_train_bench BASELINE=${BASELINE:-$B/hf_peft_baseline.py} exec bash bench/gpu_train_bench.sh "$@"
fi
fail=0
"$B/check_gpu" || fail=1
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
for f in llama mistral qwen2 gemma2 granite; do "$B/tune" init tests/gpu/configs/$f.json --out "$W/$f" >/dev/null || exit 1; done
"$B/check_train_gpu" "$W/llama" "$W/mistral" "$W/qwen2" "$W/gemma2" "$W/granite" || fail=1
TUNE=$B/tune bash tests/gpu/train_gpu.sh || fail=1
[ $fail = 0 ] && echo "check_bundle: all GPU checks passed" || echo "check_bundle: FAILED"
exit $fail
