#!/usr/bin/env bash
# `tune export --type T` is llama-quantize applied to `tune export --type f32`,
# tensor for tensor: the same type chosen for every tensor (llama-quant.cpp's
# Q4_K_M mix, the output matrix rule, the fallbacks of rows that are not a
# multiple of 256 or 32) and the same bytes, with the same metadata. llama.cpp's
# own llama_model_quantize comes from the prebuilt library in node_modules
# (tests/llama/llama_quantize.c, built here); tests/llama/gguf_same.py compares.
set -u
T=${TUNE:?set TUNE to the tune binary}
cd "${TUNE_ROOT:-$(dirname "$0")/../..}"
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
L=$(ls node_modules/@node-llama-cpp/linux-x64/bins/*/libllama.v*.so 2>/dev/null | head -1)
[ -n "$L" ] || fail "llama.cpp's prebuilt libllama is missing under node_modules: run scripts/setup.sh"
cc -O1 -o $W/llama_quantize tests/llama/llama_quantize.c -ldl || fail "building tests/llama/llama_quantize.c"
declare -A FTYPE=([q4_0]=2 [q8_0]=7 [q4_k_m]=15 [q6_k]=18)
for f in llama-wide llama mistral qwen2 gemma2 granite; do
    types="q4_k_m q6_k"
    [ $f = llama-wide ] && types="q8_0 q4_0 q4_k_m q6_k"
    [ $f = qwen2 ] && types="q4_k_m q4_0"
    $T export tests/fixtures/$f --gguf $W/$f.f32.gguf --type f32 2> $W/err || fail "export $f f32: $(tail -2 $W/err)"
    for ty in $types; do
        $T export tests/fixtures/$f --gguf $W/$f.$ty.gguf --type $ty 2> $W/err || fail "export $f $ty: $(tail -2 $W/err)"
        $W/llama_quantize $L $W/$f.f32.gguf $W/$f.$ty.llama.gguf ${FTYPE[$ty]} 2 > $W/log 2>&1 || fail "llama-quantize $f $ty: $(tail -3 $W/log)"
        out=$(python3 tests/llama/gguf_same.py $W/$f.$ty.gguf $W/$f.$ty.llama.gguf --kv) || fail "$f $ty: tune and llama-quantize differ: $out"
        printf '%-11s %-7s same as llama-quantize: %s\n' $f $ty "$out"
    done
done
