#!/usr/bin/env bash
# End to end: `tune init` then `tune check` through the command line, the
# JSON shape CLI.md fixes, exit codes, and broken checkpoints giving exit 2
# with a message naming the file (never a signal or a sanitizer report).
set -u
T=${TUNE:?set TUNE to the tune binary}
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
PY=python3

# A random Qwen2.5-shaped checkpoint with the real config, shrunk to 2 layers.
$PY - "$W/cfg.json" <<'P'
import json,sys
json.dump({"model_type":"qwen2","architectures":["Qwen2ForCausalLM"],"vocab_size":300,"hidden_size":64,
 "intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,
 "max_position_embeddings":256,"rms_norm_eps":1e-6,"rope_theta":1000000.0,"tie_word_embeddings":True,
 "torch_dtype":"bfloat16"}, open(sys.argv[1],"w"))
P
$T init "$W/cfg.json" --out "$W/m" --seed 3 2>/dev/null || fail "init"
$T check "$W/m" --json > "$W/out.json" || fail "check on a fresh init exited $?"
$PY - "$W/out.json" <<'P' || exit 1
import json,sys
d=json.load(open(sys.argv[1]))
m=d["model"]
H,V,F,L=64,300,128,2
q,kv=64,32
layer = 2*H + H*q+q + 2*(H*kv+kv) + q*H + 3*H*F
want = V*H + H + L*layer
assert m["family"]=="qwen2", m
assert m["params_total"]==want, (m["params_total"], want)
assert m["dtype"]=="BF16", m["dtype"]
assert m["tensor_problems"]==[], m["tensor_problems"]
for s in ["lora","qlora","full","fuse","gguf","generate"]:
    assert isinstance(d["stages"][s]["ok"], bool) and d["stages"][s]["why"], s
for k in ["inference","lora","qlora","full"]:
    p=d["plans"][k]
    assert sum(b["bytes"] for b in p["buffers"])==p["total_bytes"], k
    assert isinstance(p["fits"], bool)
assert d["budget_bytes"]>0
print("check --json: params", m["params_total"], "ok")
P

# Budget and settings change the verdicts, and the suggestion names a setting.
$T check gemma-2-9b-it --budget 16G --json > "$W/g.json" || fail "check gemma-2-9b-it"
$PY - "$W/g.json" <<'P' || exit 1
import json,sys
d=json.load(open(sys.argv[1]))
assert d["model"]["params_total"]==9241705984
assert not d["plans"]["lora"]["fits"], "gemma-2-9b bf16 LoRA must not fit 16G"
assert "QLoRA" in d["plans"]["lora"]["suggestion"], d["plans"]["lora"]["suggestion"]
print("gemma-2-9b-it at 16G:", d["plans"]["lora"]["suggestion"])
P
n=$($T check --all --budget 16G | grep -cE '^(llama|qwen|mistral|gemma|granite)')
[ "$n" -ge 14 ] || fail "check --all listed $n presets"

# A checkpoint missing a tensor: exit 1, and the report names it.
$PY - "$W/m/model.safetensors" "$W/bad/model.safetensors" <<'P'
import json,struct,sys,os
src,dst=sys.argv[1],sys.argv[2]
b=open(src,"rb").read(); n=struct.unpack("<Q",b[:8])[0]; h=json.loads(b[8:8+n])
del h["model.layers.1.mlp.up_proj.weight"]
t=json.dumps(h).encode(); t+=b" "*((8-len(t)%8)%8)
os.makedirs(os.path.dirname(dst),exist_ok=True)
open(dst,"wb").write(struct.pack("<Q",len(t))+t+b[8+n:])
P
cp "$W/m/config.json" "$W/bad/"
$T check "$W/bad" > "$W/bad.out" 2>&1; rc=$?
[ $rc -eq 1 ] || fail "missing tensor: exit $rc, expected 1"
grep -q "missing tensor model.layers.1.mlp.up_proj.weight \[128, 64\]" "$W/bad.out" || fail "missing tensor not named: $(cat "$W/bad.out")"

# Bad input through the command line: exit 2, a message naming the file.
expect_usage() { # expect_usage FRAGMENT cmd...
  local frag="$1"; shift
  "$@" > "$W/o" 2> "$W/e"; local rc=$?
  [ $rc -eq 2 ] || fail "$* exited $rc (expected 2): $(cat "$W/e")"
  grep -qF -- "$frag" "$W/e" || fail "$*: message lacks '$frag': $(cat "$W/e")"
}
mkdir -p "$W/trunc"; cp "$W/m/config.json" "$W/trunc/"
head -c 3000 "$W/m/model.safetensors" > "$W/trunc/model.safetensors"
expect_usage "model.safetensors: tensor" $T check "$W/trunc"
mkdir -p "$W/nojson"; printf '{"model_type": "llama", ' > "$W/nojson/config.json"
expect_usage "config.json:1:" $T check "$W/nojson"
expect_usage "not a model folder, a config file or a preset" $T check no-such-model
expect_usage "unknown option '--frobnicate'" $T check gemma-2-9b-it --frobnicate
expect_usage "--budget" $T check gemma-2-9b-it --budget lots
expect_usage "'up' is not a module of llama models" $T check llama-3.2-1b-instruct --targets q_proj,up
$T --help > /dev/null || fail "tune --help"
$T check --help | grep -q -- "--grad-checkpoint" || fail "check --help"
$T init --help | grep -q -- "--seed" || fail "init --help"
echo "check_cli: ok"
