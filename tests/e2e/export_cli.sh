#!/usr/bin/env bash
# `tune fuse` and `tune export` end to end, apart from llama.cpp
# (export_llama.sh): the fused folder computes what base + adapter computes
# (PEFT and mlx-lm adapters alike, sharded or not, in bf16 too); the GGUF
# files hold the names, types, metadata and tokenizer llama.cpp expects
# (tests/llama/gguf_read.py reads them independently); and bad input gets a
# clear message, exit 2 (or 1 for a failed write), and no output at all:
# missing tensors, an adapter for another base, an adapter on modules the
# model lacks, rows a K-quant cannot take (the fallback named), a full disk.
set -u
T=${TUNE:?set TUNE to the tune binary}
cd "${TUNE_ROOT:-$(dirname "$0")/../..}"
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
FX=tests/fixtures M=$FX/llama A=$FX/llama/lora/final_adapter
IDS=501,39,68,75,331,313,272,465,0,381,71,345,314,266,265,68
RD="python3 tests/llama/gguf_read.py"

# expect CODE PATTERN CMD...: exit status CODE and stderr matching PATTERN.
expect() {
    local code=$1 pat=$2; shift 2
    "$@" > $W/out 2> $W/err; local rc=$?
    [ $rc -eq $code ] || fail "$* exited $rc (expected $code): $(tail -3 $W/err)"
    grep -qE -- "$pat" $W/err || fail "$*: stderr lacks /$pat/: $(tail -3 $W/err)"
}
# no leftovers of an output: neither it nor a temporary file beside it
nothing_at() { for p in "$@"; do ls -d "$p" "$p".tmp.* 2>/dev/null | grep -q . && fail "left behind: $(ls -d "$p"*)"; done; return 0; }

# --- fuse ------------------------------------------------------------------
$T fuse $M --adapter $A --out $W/fused 2> $W/err || fail "fuse: $(tail -3 $W/err)"
for f in config.json model.safetensors tokenizer.json tokenizer_config.json generation_config.json; do
    [ -s $W/fused/$f ] || fail "fused folder lacks $f"
done
$T logits $M --adapter $A --ids $IDS > $W/ref.json || fail "logits base + adapter"
$T logits $W/fused --ids $IDS > $W/fused.json || fail "logits fused"
python3 - $W/ref.json $W/fused.json <<'P' || fail "fused folder differs from base + adapter"
import json, sys
a, b = (json.load(open(p))["probs"] for p in sys.argv[1:3])
d = max(abs(x - y) for r, s in zip(a, b) for x, y in zip(r, s))
print(f"fuse: fused folder vs base + adapter, largest probability difference {d:.2e}")
assert d < 1e-5, d
P

# An mlx-lm adapter (lora_a [in, r], lora_b [r, out], raw scale) fuses to the same bytes.
python3 - $A $W/mlx <<'P' || fail "making the mlx-lm adapter"
import json, os, struct, sys
src, dst = sys.argv[1:3]
os.makedirs(dst)
b = open(f"{src}/adapter_model.safetensors", "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
out, blobs, off = {}, [], 0
for name, e in h.items():
    if name == "__metadata__":
        continue
    rows, cols = e["shape"]
    s0, s1 = e["data_offsets"]
    v = struct.unpack(f"<{rows * cols}f", b[8 + n + s0:8 + n + s1])
    t = [v[r * cols + c] for c in range(cols) for r in range(rows)]  # transpose
    key = name.replace("base_model.model.", "").replace(".lora_A.weight", ".lora_a").replace(".lora_B.weight", ".lora_b")
    raw = struct.pack(f"<{len(t)}f", *t)
    out[key] = {"dtype": "F32", "shape": [cols, rows], "data_offsets": [off, off + len(raw)]}
    blobs.append(raw)
    off += len(raw)
hj = json.dumps(out).encode()
with open(f"{dst}/adapters.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(hj)) + hj + b"".join(blobs))
cfg = json.load(open(f"{src}/adapter_config.json"))
json.dump({"fine_tune_type": "lora", "num_layers": 2,
           "lora_parameters": {"rank": cfg["r"], "scale": cfg["lora_alpha"] / cfg["r"], "dropout": 0.0}}, open(f"{dst}/adapter_config.json", "w"))
P
$T fuse $M --adapter $W/mlx --out $W/fused_mlx 2> $W/err || fail "fuse mlx-lm adapter: $(tail -3 $W/err)"
cmp $W/fused/model.safetensors $W/fused_mlx/model.safetensors || fail "PEFT and mlx-lm forms of one adapter fuse differently"
echo "fuse: the mlx-lm form of the adapter fuses to the same bytes"

# Shards with an index; the sharded folder computes the same.
$T fuse $M --adapter $A --out $W/sharded --max-shard-size 150000 2> $W/err || fail "sharded fuse: $(tail -3 $W/err)"
[ -s $W/sharded/model.safetensors.index.json ] && ls $W/sharded/model-0000*-of-0000*.safetensors > /dev/null || fail "no shards and index"
$T logits $W/sharded --ids $IDS > $W/sharded.json || fail "logits sharded"
cmp -s $W/fused.json $W/sharded.json || fail "sharded folder computes differently"
echo "fuse: $(ls $W/sharded/*.safetensors | wc -l) shards + index, same logits"

# --dtype bf16: stored and declared bf16.
$T fuse $M --adapter $A --out $W/bf16 --dtype bf16 2> $W/err || fail "fuse --dtype bf16: $(tail -3 $W/err)"
grep -qE "\"torch_dtype\":[[:space:]]*\"bfloat16\"" $W/bf16/config.json || fail "bf16 fuse: config.json torch_dtype"
head -c 400 $W/bf16/model.safetensors | grep -q '"BF16"' || fail "bf16 fuse: tensors are not BF16"
$T logits $W/bf16 --ids $IDS > /dev/null || fail "bf16 fused folder does not run"

# The output folder: an earlier fuse is replaced, a folder of other files is refused.
$T fuse $M --adapter $A --out $W/fused 2> /dev/null || fail "fuse over an earlier fuse"
mkdir $W/other && echo keep > $W/other/notes.txt
expect 2 "notes.txt, which a fuse does not write" $T fuse $M --adapter $A --out $W/other
[ "$(cat $W/other/notes.txt)" = keep ] && [ $(ls $W/other | wc -l) -eq 1 ] || fail "a refused fuse touched the folder"

# An MLX 4-bit (affine, groups of 64) base: dequantized, then fused or
# exported. The reference is the same weights dequantized by Python into a
# dense F32 folder: the fused tensors and the GGUF files must be the same bytes.
mkdir -p $W/mlx4/m $W/deq4/m
python3 - $M $W/mlx4/m $W/deq4/m <<'P' || fail "making the MLX 4-bit model"
import json, shutil, struct, sys
src, qdir, ddir = sys.argv[1:4]
f32 = lambda v: struct.unpack("<f", struct.pack("<f", v))[0]
b = open(f"{src}/model.safetensors", "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
qt, dt = {}, {}
for name, e in h.items():
    if name == "__metadata__": continue
    s0, s1 = e["data_offsets"]; shape = e["shape"]
    v = list(struct.unpack(f"<{(s1 - s0) // 4}f", b[8 + n + s0:8 + n + s1]))
    if len(shape) != 2 or shape[1] % 64:
        qt[name] = dt[name] = (shape, "F32", struct.pack(f"<{len(v)}f", *v)); continue
    rows, cols = shape; words, scales, biases, deq = [], [], [], []
    for r in range(rows):
        for g in range(cols // 64):
            grp = v[r * cols + g * 64:(r * cols + g * 64 + 64)]
            lo, hi = min(grp), max(grp); sc = f32((hi - lo) / 15) or 1.0; bi = f32(lo)
            q = [max(0, min(15, round((x - bi) / sc))) for x in grp]
            scales.append(sc); biases.append(bi)
            deq += [f32(f32(sc * k) + bi) for k in q]
            words += [sum(q[8 * i + k] << (4 * k) for k in range(8)) for i in range(8)]
    base = name[:-len(".weight")]
    qt[name] = ([rows, cols // 8], "U32", struct.pack(f"<{len(words)}I", *words))
    qt[base + ".scales"] = ([rows, cols // 64], "F32", struct.pack(f"<{len(scales)}f", *scales))
    qt[base + ".biases"] = ([rows, cols // 64], "F32", struct.pack(f"<{len(biases)}f", *biases))
    dt[name] = (shape, "F32", struct.pack(f"<{len(deq)}f", *deq))
def save(path, t):
    hdr, off, blobs = {}, 0, []
    for k in sorted(t):
        shape, dtype, raw = t[k]; hdr[k] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}; off += len(raw); blobs.append(raw)
    hj = json.dumps(hdr).encode(); open(path, "wb").write(struct.pack("<Q", len(hj)) + hj + b"".join(blobs))
save(f"{qdir}/model.safetensors", qt); save(f"{ddir}/model.safetensors", dt)
cfg = json.load(open(f"{src}/config.json"))
json.dump(cfg, open(f"{ddir}/config.json", "w")); cfg["quantization"] = {"group_size": 64, "bits": 4}; json.dump(cfg, open(f"{qdir}/config.json", "w"))
for d in (qdir, ddir):
    for f in ("tokenizer.json", "tokenizer_config.json"): shutil.copy(f"{src}/{f}", d)
P
$T fuse $W/mlx4/m --adapter $A --out $W/mlx4/fused 2> $W/err || fail "fuse an MLX 4-bit base: $(tail -3 $W/err)"
$T fuse $W/deq4/m --adapter $A --out $W/deq4/fused 2> /dev/null || fail "fuse the dequantized reference"
cmp $W/mlx4/fused/model.safetensors $W/deq4/fused/model.safetensors || fail "MLX 4-bit base fused differently from its dequantized weights"
grep -q quantization $W/mlx4/fused/config.json && fail "the fused folder's config.json still says quantization"
$T export $W/mlx4/m --adapter $A --gguf $W/mlx4/m.gguf --type q8_0 2> /dev/null || fail "export an MLX 4-bit base"
$T export $W/deq4/m --adapter $A --gguf $W/deq4/m.gguf --type q8_0 2> /dev/null || fail "export the dequantized reference"
cmp $W/mlx4/m.gguf $W/deq4/m.gguf || fail "MLX 4-bit base exported differently from its dequantized weights"
echo "mlx 4-bit base: dequantized, then fused (HF folder) and exported (GGUF q8_0), byte for byte as from dense weights"

# --- GGUF files, read back independently --------------------------------------
$T export $M --gguf $W/l.gguf --type f16 2> $W/err || fail "export f16: $(tail -3 $W/err)"
$RD $W/l.gguf > $W/l.json || fail "gguf_read: $(cat $W/l.json)"
python3 - $W/l.json $M <<'P' || fail "llama f16 GGUF metadata"
import json, sys
d = json.load(open(sys.argv[1])); kv = d["kv"]; t = {x["name"]: x for x in d["tensors"]}
cfg = json.load(open(sys.argv[2] + "/tokenizer_config.json"))
want = {"general.architecture": "llama", "general.file_type": 1, "llama.block_count": 2, "llama.embedding_length": 64,
        "llama.attention.head_count": 4, "llama.attention.head_count_kv": 2, "llama.rope.dimension_count": 16,
        "llama.vocab_size": 512, "llama.context_length": 256, "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "llama-bpe",
        "tokenizer.ggml.bos_token_id": 501, "tokenizer.ggml.eos_token_id": 510, "tokenizer.ggml.add_bos_token": True}
for k, v in want.items():
    assert kv.get(k) == v, (k, kv.get(k), v)
assert kv["tokenizer.chat_template"] == cfg["chat_template"]
assert kv["tokenizer.ggml.tokens"]["n"] == 512 and kv["tokenizer.ggml.merges"]["n"] == 245
assert abs(kv["llama.rope.freq_base"] - 500000) < 1 and abs(kv["llama.attention.layer_norm_rms_epsilon"] - 1e-5) < 1e-9
assert t["rope_freqs.weight"]["type"] == "F32" and t["rope_freqs.weight"]["ne"] == [8]
assert t["token_embd.weight"]["type"] == "F16" and t["token_embd.weight"]["ne"] == [64, 512]
assert t["blk.0.attn_k.weight"]["ne"] == [64, 32] and t["blk.1.ffn_down.weight"]["ne"] == [128, 64]
assert t["blk.0.attn_norm.weight"]["type"] == "F32" and "output.weight" not in t  # tied
assert len(t) == 1 + 1 + 2 * 9 + 1, sorted(t)
print("gguf: llama f16 metadata, names, shapes and types as llama.cpp expects")
P
# Q4_K_M on the 256-wide fixture: llama-quant's mix; on the 64-wide one the fallbacks, named.
$T export $FX/llama-wide --gguf $W/w.gguf --type q4_k_m 2> $W/err || fail "export q4_k_m: $(tail -3 $W/err)"
$RD $W/w.gguf > $W/w.json || fail "gguf_read q4_k_m"
python3 - $W/w.json <<'P' || fail "Q4_K_M types"
import json, sys
t = {x["name"]: x["type"] for x in json.load(open(sys.argv[1]))["tensors"]}
want = {"token_embd.weight": "Q6_K", "blk.0.attn_q.weight": "Q4_K", "blk.0.attn_v.weight": "Q4_K", "blk.1.attn_v.weight": "Q6_K",
        "blk.0.ffn_down.weight": "Q4_K", "blk.1.ffn_down.weight": "Q6_K", "blk.1.ffn_up.weight": "Q4_K", "output_norm.weight": "F32"}
for k, v in want.items():
    assert t[k] == v, (k, t[k], v)
print("gguf: q4_k_m on llama-wide: Q4_K, output and layer-1 attn_v / ffn_down Q6_K, norms F32")
P
expect 0 "Q4_K -> Q5_0 for 12 tensors whose rows are not a multiple of 256" $T export $M --gguf $W/s.gguf --type q4_k_m
grep -qE "Q6_K -> Q8_0 for 2 tensors" $W/err || fail "q4_k_m fallback of attn_v / ffn_down not named: $(cat $W/err)"
python3 - <(python3 tests/llama/gguf_read.py $W/s.gguf) <<'P' || fail "fallback types"
import json, sys
t = {x["name"]: x["type"] for x in json.load(open(sys.argv[1]))["tensors"]}
assert t["blk.0.attn_q.weight"] == "Q5_0" and t["blk.1.attn_v.weight"] == "Q8_0" and t["token_embd.weight"] == "Q8_0", t
P
# A GGUF adapter: tensors, alpha, architecture.
$T export $M --adapter $A --gguf-adapter $W/a.gguf 2> $W/err || fail "export --gguf-adapter: $(tail -3 $W/err)"
python3 - <($RD $W/a.gguf) <<'P' || fail "GGUF adapter"
import json, sys
d = json.load(open(sys.argv[1])); kv = d["kv"]; t = {x["name"]: x for x in d["tensors"]}
assert kv["general.type"] == "adapter" and kv["adapter.type"] == "lora" and kv["general.architecture"] == "llama"
assert abs(kv["adapter.lora.alpha"] - 8.0) < 1e-6, kv["adapter.lora.alpha"]
assert t["blk.0.attn_q.weight.lora_a"]["ne"] == [64, 4] and t["blk.0.attn_q.weight.lora_b"]["ne"] == [4, 64]
assert t["blk.1.ffn_down.weight.lora_a"]["ne"] == [128, 4] and len(t) == 28
print("gguf: adapter with 28 LoRA matrices, alpha 8 (scale 2 at rank 4)")
P
# Vocabulary padded to config.json's vocab_size.
python3 -c "import json; c = json.load(open('$M/config.json')); c['vocab_size'] = 520; json.dump(c, open('$W/cfg520.json', 'w'))"
$T init $W/cfg520.json --out $W/v520 --seed 1 2> /dev/null || fail "init vocab 520"
cp $M/tokenizer.json $M/tokenizer_config.json $W/v520/
$T export $W/v520 --gguf $W/v.gguf --type f32 2> /dev/null || fail "export padded vocabulary"
python3 - <($RD $W/v.gguf) <<'P' || fail "vocabulary padding"
import json, sys
kv = json.load(open(sys.argv[1]))["kv"]
assert kv["tokenizer.ggml.tokens"]["n"] == 520 and kv["tokenizer.ggml.token_type"]["n"] == 520
print("gguf: vocabulary of 512 padded to 520 ([PAD512]..[PAD519], type unused)")
P
python3 - $W/v.gguf <<'P' || fail "padding entries"
import sys; sys.path.insert(0, "tests/llama"); import gguf_read
kv, _ = gguf_read.read(sys.argv[1])
assert kv["tokenizer.ggml.tokens"]["all"][512:] == [f"[PAD{i}]" for i in range(512, 520)]
assert kv["tokenizer.ggml.token_type"]["all"][512:] == [5] * 8
P

# --- bad input: clear errors, exit 2, nothing written ----------------------------
cp -r $M $W/broken
python3 - $W/broken/model.safetensors <<'P'
import json, struct, sys
p = sys.argv[1]; b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
del h["model.layers.1.mlp.down_proj.weight"]
hj = json.dumps(h).encode(); open(p, "wb").write(struct.pack("<Q", len(hj)) + hj + b[8 + n:])
P
expect 2 "missing tensor model.layers.1.mlp.down_proj.weight" $T export $W/broken --gguf $W/x.gguf --type q8_0
expect 2 "missing tensor model.layers.1.mlp.down_proj.weight" $T fuse $W/broken --adapter $A --out $W/xf
expect 2 "has shape \[4, [0-9]+\], expected \[4, 256\].*another base" $T export $FX/llama-wide --adapter $A --gguf $W/x.gguf
expect 2 "another base" $T fuse $FX/llama-wide --adapter $A --out $W/xf
expect 2 "mamba.in_proj.* is not a LoRA matrix of a llama model" $T export $M --adapter $FX/granitehybrid/lora/final_adapter --gguf-adapter $W/x.gguf
expect 2 "is not a LoRA matrix of a llama model" $T fuse $M --adapter $FX/granitehybrid/lora/final_adapter --out $W/xf
expect 2 "--type: expected one of f32, f16, bf16, q8_0, q4_0, q4_k_m, q6_k, got 'q3_k'" $T export $M --gguf $W/x.gguf --type q3_k
expect 2 "the folder $W/nope does not exist" $T export $M --gguf $W/nope/x.gguf
expect 2 "absent: cannot open" $T export $W/absent --gguf $W/x.gguf
expect 2 "needs --adapter" $T export $M --gguf-adapter $W/x.gguf
expect 2 "needs MODEL, --adapter DIR and --out DIR" $T fuse $M --out $W/xf
nothing_at $W/x.gguf $W/xf
# A full disk (a file-size limit: writes fail with EFBIG): exit 1, nothing left.
expect 1 "write failed \(File too large\)" bash -c "ulimit -f 200; trap '' XFSZ; exec $T export $FX/llama-wide --gguf $W/x.gguf --type f32"
expect 1 "nothing was written" bash -c "ulimit -f 200; trap '' XFSZ; exec $T fuse $FX/llama --adapter $A --out $W/xf --dtype f32"
nothing_at $W/x.gguf $W/xf
echo "bad input: missing tensors, another base's adapter, foreign modules, unknown types, full disk: refused cleanly"
