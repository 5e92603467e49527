#!/usr/bin/env bash
# LoRA trained on a GGUF file as the frozen base, exported as a GGUF
# adapter for that same file, and run by llama.cpp (node-llama-cpp 3.21.1,
# tests/llama/gguf_eval.mjs, KV cache in F32): a Q8_0 GGUF of the llama
# fixture (64 wide) and a Q4_K_M GGUF of llama-wide (256 wide: Q4_K, with
# Q6_K for attn_v / ffn_down of some layers). For each: `tune train
# FILE.gguf` (a few steps), `tune export FILE.gguf --adapter --gguf-adapter`,
# then llama.cpp's teacher-forced next-token probabilities of FILE.gguf +
# the GGUF adapter against `tune logits FILE.gguf --adapter` (tune on the
# file's own blocks + the trained adapter). Printed: the largest |dp|
# between the two, and the adapter's own effect in tune (base vs base +
# adapter) to show the comparison would see a wrong adapter.
# Tolerance: llama.cpp multiplies quantized matrices with the activations
# quantized to 8 bits (Q8_0 / Q8_K blocks), tune with fp32 activations, so
# the two differ by that rounding even without an adapter: on these random
# fixtures up to 5.1e-2 (llama-wide Q8_0) and 1.1e-1 (llama-wide Q4_K_M)
# (docs/export.md, "file's weights"). Held: 0.05 for Q8_0, 0.15 for Q4_K_M
# (measured 7.5e-3 and 2.5e-2 with the adapter, dev machine 2026-11-29),
# the top token equal wherever tune's top-1 / top-2 margin exceeds 0.1, and
# the adapter's own effect at least twice the tolerance (measured 0.18 and
# 0.92), so a wrongly applied adapter (B's Q/K rows unpermuted, a missing
# module) could not pass.
# Also: fuse from the GGUF base (to a folder, and re-quantized to a GGUF)
# prints how far the fused logits moved; a folder fuse stays within 1e-3
# of base + adapter (fp32 arithmetic only).
set -u
T=${TUNE:?set TUNE to the tune binary}
cd "${TUNE_ROOT:-$(dirname "$0")/../..}"
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
command -v node >/dev/null || fail "node is missing: run scripts/setup.sh"
[ -d node_modules/node-llama-cpp ] || fail "node_modules/node-llama-cpp is missing: run scripts/setup.sh"
FX=tests/fixtures
export TMPDIR=$W

ids_of() { # row 0 of input_ids in logits.safetensors, as 1,2,3
    python3 - "$1" <<'P'
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])["input_ids"]
s, e = h["data_offsets"]
cols = h["shape"][1]
print(",".join(map(str, struct.unpack("<%dq" % cols, b[8 + n + s: 8 + n + s + 8 * cols]))))
P
}

runs=() cases=()
for c in "llama q8_0" "llama-wide q4_k_m"; do
    set -- $c; f=$1 ty=$2 n=$f.$ty
    M=$FX/$f G=$W/$n.gguf
    ids=$(ids_of $M/logits.safetensors) || fail "$f: reading logits.safetensors"
    $T export $M --gguf $G --type $ty 2> $W/err || fail "export $n: $(tail -2 $W/err)"
    $T train $G --data tests/data/chat --iters 6 --batch 2 --rank 8 --alpha 16 --lr 1e-2 --seed 5 --max-seq-length 64 --out $W/$n.a 2> $W/err \
        || fail "train on $n: $(tail -3 $W/err)"
    grep -q "is the frozen base" $W/err || fail "train on $n did not say it reads the GGUF's blocks: $(head -3 $W/err)"
    grep -q "\"base_model_name_or_path\":[[:space:]]*\"$G\"" $W/$n.a/adapter_config.json || fail "adapter_config.json does not name $G: $(head -3 $W/$n.a/adapter_config.json)"
    $T export $G --adapter $W/$n.a --gguf-adapter $W/$n.adapter.gguf 2> $W/err || fail "export --gguf-adapter against $n: $(tail -2 $W/err)"
    $T logits $G --adapter $W/$n.a --ids "$ids" > $W/$n.lora.json 2> $W/err || fail "tune logits $n + adapter: $(tail -2 $W/err)"
    $T logits $G --ids "$ids" > $W/$n.base.json 2> $W/err || fail "tune logits $n: $(tail -2 $W/err)"
    runs+=("{\"name\": \"$n\", \"model\": \"$G\", \"ids\": [$ids], \"lora\": \"$W/$n.adapter.gguf\"}")
    cases+=("$n")
    # fuse from the GGUF base: a folder (fp32 arithmetic: within 1e-3) and a re-quantized GGUF
    $T fuse $G --adapter $W/$n.a --out $W/$n.fused 2> $W/err || fail "fuse $n: $(tail -2 $W/err)"
    moved=$(grep "logits moved" $W/err) || fail "fuse $n did not say how far the logits moved: $(tail -2 $W/err)"
    echo "$n fuse to a folder: ${moved#tune fuse: }"
    python3 -c 'import sys; a = float(sys.argv[1]); sys.exit(0 if a <= 1e-3 else 1)' "$(echo "$moved" | sed 's/.*largest abs \([^,]*\),.*/\1/')" || fail "fused folder of $n moved: $moved"
    $T fuse $G --adapter $W/$n.a --gguf $W/$n.fused.gguf --type $ty 2> $W/err || fail "fuse $n --gguf: $(tail -2 $W/err)"
    moved=$(grep "logits moved" $W/err) || fail "fuse $n --gguf did not say how far the logits moved: $(tail -2 $W/err)"
    echo "$n fuse re-quantized to $ty: ${moved#tune fuse: }"
done
# check prices the GGUF; --qlora, full fine-tuning and an adapter GGUF as the base are refused with a reason
G=$W/llama.q8_0.gguf
$T check $G > $W/check.out 2>&1 || fail "check $G: $(tail -3 $W/check.out)"
grep -q "weights: layers (GGUF blocks)" $W/check.out && grep -q "^  lora      yes" $W/check.out || fail "check does not price the GGUF's blocks: $(head -12 $W/check.out)"
$T train $G --data tests/data/chat --iters 1 --qlora --out $W/x 2> $W/err; [ $? -eq 1 ] && grep -q "without --qlora" $W/err || fail "--qlora on a GGUF not refused: $(cat $W/err)"
$T train $G --data tests/data/chat --iters 1 --fine-tune-type full --out $W/x 2> $W/err; [ $? -eq 1 ] && grep -q "$G: full fine-tuning of a GGUF" $W/err || fail "full fine-tuning of a GGUF not refused: $(cat $W/err)"
$T train $W/llama.q8_0.adapter.gguf --data tests/data/chat --iters 1 --out $W/x 2> $W/err; [ $? -eq 2 ] && grep -q "adapter.gguf: a LoRA adapter GGUF" $W/err || fail "an adapter GGUF as base not refused: $(cat $W/err)"
[ -z "$(ls $W | grep tune-gguf)" ] || fail "temporary folders left behind: $(ls $W | grep tune-gguf)"
join() { local IFS=,; echo "$*"; }
echo "{\"runs\": [$(join "${runs[@]}")]}" > $W/jobs.json
node tests/llama/gguf_eval.mjs $W/jobs.json > $W/llama.json 2> $W/node.err || fail "llama.cpp (node-llama-cpp): $(tail -5 $W/node.err)"
python3 - $W "${cases[@]}" <<'P'
import json, sys
w, cases = sys.argv[1], sys.argv[2:]
runs = {r["name"]: r for r in json.load(open(f"{w}/llama.json"))["runs"]}
TOLS, MARGIN = {"q8_0": 0.05, "q4_k_m": 0.15}, 0.1
bad = 0
def worst(a, b):
    return max(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb))
for n in cases:
    lora = json.load(open(f"{w}/{n}.lora.json"))["probs"]
    base = json.load(open(f"{w}/{n}.base.json"))["probs"]
    got = runs[n]["probs"]
    TOL = TOLS[n.split(".")[-1]]
    d, effect = worst(lora, got), worst(lora, base)
    tops = [t for t, (r, q) in enumerate(zip(lora, got))
            if sorted(r)[-1] - sorted(r)[-2] > MARGIN and r.index(max(r)) != q.index(max(q))]
    ok = d <= TOL and not tops and effect >= 2 * TOL
    print(f"{n}: llama.cpp GGUF + GGUF adapter vs tune on the GGUF + adapter: largest |dp| {d:.3g} (tolerance {TOL}); "
          f"the adapter itself moves tune's probabilities by {effect:.3g}; top token differs at {tops or 'no position'}"
          + ("" if ok else "   FAIL"))
    bad += not ok
sys.exit(1 if bad else 0)
P
