#!/usr/bin/env bash
# A fused folder's config.json is the base's, byte for byte (cJSON would print
# 30.0 as 30, which transformers' strict config classes refuse for a float
# field); with --dtype only the dtype value changes.
set -u
T=${TUNE:?}
cd "${TUNE_ROOT:-.}"
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
for f in gemma2 granite; do
  $T fuse tests/fixtures/$f --adapter tests/fixtures/$f/lora/final_adapter --out "$W/$f" 2>/dev/null || { echo "FAIL: fuse $f"; exit 1; }
  cmp tests/fixtures/$f/config.json "$W/$f/config.json" || { echo "FAIL: $f config.json changed"; exit 1; }
done
$T fuse tests/fixtures/gemma2 --adapter tests/fixtures/gemma2/lora/final_adapter --out "$W/b" --dtype bf16 2>/dev/null || { echo "FAIL: fuse bf16"; exit 1; }
d=$(diff tests/fixtures/gemma2/config.json "$W/b/config.json" | grep -c '^[<>]')
[ "$d" -eq 2 ] && grep -q '"torch_dtype": "bfloat16"' "$W/b/config.json" || { echo "FAIL: --dtype edit: $(diff tests/fixtures/gemma2/config.json "$W/b/config.json")"; exit 1; }
grep -q '"final_logit_softcapping": 30.0' "$W/b/config.json" || { echo "FAIL: float lost"; exit 1; }
echo "fuse_config: ok"
