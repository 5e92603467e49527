#!/usr/bin/env bash
# A fused folder's config.json is the base's, byte for byte (cJSON would print
# 30.0 as 30, which transformers' strict config classes refuse for a float
# field); with --dtype only the dtype value changes.
set -u
T=${TUNE:?}
cd "${TUNE_ROOT:-.}"
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
for f in gemma2 granite granitehybrid granitehybrid-moe; do
  $T fuse tests/fixtures/$f --adapter tests/fixtures/$f/lora/final_adapter --out "$W/$f" 2>/dev/null || { echo "FAIL: fuse $f"; exit 1; }
  cmp tests/fixtures/$f/config.json "$W/$f/config.json" || { echo "FAIL: $f config.json changed"; exit 1; }
done
$T fuse tests/fixtures/gemma2 --adapter tests/fixtures/gemma2/lora/final_adapter --out "$W/b" --dtype bf16 2>/dev/null || { echo "FAIL: fuse bf16"; exit 1; }
d=$(diff tests/fixtures/gemma2/config.json "$W/b/config.json" | grep -c '^[<>]')
[ "$d" -eq 2 ] && grep -q '"torch_dtype": "bfloat16"' "$W/b/config.json" || { echo "FAIL: --dtype edit: $(diff tests/fixtures/gemma2/config.json "$W/b/config.json")"; exit 1; }
grep -q '"final_logit_softcapping": 30.0' "$W/b/config.json" || { echo "FAIL: float lost"; exit 1; }
# Granite 4.0-H (Mamba2 in_proj / out_proj, shared_mlp input_linear /
# output_linear, q/k/v/o merged): the fused folder computes what base + adapter does.
ids=1,5,9,33,100,200,7,8,9,10,11,12
for f in granitehybrid granitehybrid-moe; do
  $T logits tests/fixtures/$f --adapter tests/fixtures/$f/lora/final_adapter --ids $ids --greedy 8 > "$W/$f.a.json" 2>/dev/null || { echo "FAIL: logits $f + adapter"; exit 1; }
  $T logits "$W/$f" --ids $ids --greedy 8 > "$W/$f.b.json" 2>/dev/null || { echo "FAIL: logits fused $f"; exit 1; }
  python3 - "$W/$f.a.json" "$W/$f.b.json" "$f" <<'P' || exit 1
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
d = max(abs(x - y) for r, s in zip(a["probs"], b["probs"]) for x, y in zip(r, s))
if d > 1e-5 or a["greedy"] != b["greedy"]:
    sys.exit("FAIL: fused %s differs from base + adapter: %g, greedy %s vs %s" % (sys.argv[3], d, a["greedy"], b["greedy"]))
print("fuse_config: %s fused vs base + adapter: largest probability difference %.2g" % (sys.argv[3], d))
P
done
echo "fuse_config: ok"
