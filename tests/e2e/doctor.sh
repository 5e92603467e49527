#!/usr/bin/env bash
# `tune doctor` on every fixture family (Granite 4.0-H dense and with
# experts included): every stage ok, the largest
# differences printed; --json; and broken inputs make it name the failing
# stage with exit 1 (an adapter for another shape, a checkpoint missing a
# tensor, a family whose training this build lacks).
set -u
T=${TUNE:?}
cd "${TUNE_ROOT:-.}"
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

for f in llama mistral qwen2 gemma2 granite granitehybrid granitehybrid-moe; do
  $T doctor tests/fixtures/$f --json > "$W/$f.json" 2> "$W/$f.err"; rc=$?
  python3 - "$W/$f.json" "$f" $rc <<'P' || { cat "$W/$f.err" | tail -5; exit 1; }
import json,sys
d=json.load(open(sys.argv[1])); fam=sys.argv[2]; rc=int(sys.argv[3])
names=[s["stage"] for s in d["stages"]]
assert names==["check","data","train","fuse","reload","generate","gguf-f16","gguf-q8_0"], names
bad=[s for s in d["stages"] if not s["ok"]]
diffs={s["stage"]:s.get("max_relative_diff") for s in d["stages"]}
print("%-17s %s  reload %.1e  gguf-f16 %.1e  gguf-q8_0 %.1e"%(fam,"ok" if d["ok"] else "FAILED",diffs["reload"],diffs["gguf-f16"],diffs["gguf-q8_0"]))
assert d["ok"] and rc==0 and not bad, bad
P
done

# An adapter whose matrices do not fit this model: the train stage names it.
mkdir -p "$W/badadapter"
cp tests/fixtures/llama/lora/init_adapter/adapter_config.json "$W/badadapter/"
python3 - tests/fixtures/llama/lora/init_adapter/adapter_model.safetensors "$W/badadapter/adapter_model.safetensors" <<'P'
import json,struct,sys
b=open(sys.argv[1],"rb").read(); n=struct.unpack("<Q",b[:8])[0]; h=json.loads(b[8:8+n]); data=b[8+n:]
k="base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
h[k]["shape"]=[4,32]; end=h[k]["data_offsets"][0]+4*4*32
# keep the byte count consistent: shrink this tensor and shift nothing else (it is the only one moved to the end)
beg,old_end=h[k]["data_offsets"]; chunk=data[beg:beg+4*4*32]
h[k]["data_offsets"]=[len(data),len(data)+len(chunk)]; data=data+chunk
t=json.dumps(h).encode(); t+=b" "*((8-len(t)%8)%8)
open(sys.argv[2],"wb").write(struct.pack("<Q",len(t))+t+data)
P
$T doctor tests/fixtures/llama --adapter "$W/badadapter" > "$W/o" 2> "$W/e"; rc=$?
[ $rc -eq 1 ] || fail "broken adapter: exit $rc: $(cat "$W/o" "$W/e" | tail -5)"
grep -qE "^train +FAILED .*does not fit this model" "$W/o" || fail "broken adapter not named: $(cat "$W/o")"

# A checkpoint missing a tensor: the check stage names it.
mkdir -p "$W/m"; cp tests/fixtures/qwen2/*.json "$W/m/"
python3 - tests/fixtures/qwen2/model.safetensors "$W/m/model.safetensors" <<'P'
import json,struct,sys
b=open(sys.argv[1],"rb").read(); n=struct.unpack("<Q",b[:8])[0]; h=json.loads(b[8:8+n])
del h["model.layers.1.mlp.down_proj.weight"]
t=json.dumps(h).encode(); t+=b" "*((8-len(t)%8)%8)
open(sys.argv[2],"wb").write(struct.pack("<Q",len(t))+t+b[8+n:])
P
$T doctor "$W/m" > "$W/o" 2> "$W/e"; rc=$?
[ $rc -eq 1 ] && grep -qE "^check +FAILED .*missing tensor model.layers.1.mlp.down_proj.weight" "$W/o" || fail "missing tensor: exit $rc $(cat "$W/o")"

# A GGUF that llama.cpp would run differently: Gemma 2 with
# query_pre_attn_scalar != head_dim (llama.cpp has no key for it and scales
# by 1/sqrt(head_dim)). The folder stages pass; the GGUF stages, which read
# the written file back as llama.cpp does, fail and say by how much.
mkdir -p "$W/g2"; cp tests/fixtures/gemma2/* "$W/g2/" 2>/dev/null
python3 -c "import json,sys; p=sys.argv[1]; c=json.load(open(p)); c['query_pre_attn_scalar']=64; json.dump(c,open(p,'w'))" "$W/g2/config.json"
$T doctor "$W/g2" > "$W/o" 2> "$W/e"; rc=$?
[ $rc -eq 1 ] && grep -qE "^reload +ok" "$W/o" && grep -qE "^gguf-f16 +FAILED .*logits differ by" "$W/o" || fail "gemma2 GGUF mismatch not caught: exit $rc $(cat "$W/o")"

$T doctor --help | grep -q -- "--adapter" || fail "doctor --help"
echo "doctor: ok"
