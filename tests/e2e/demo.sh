#!/usr/bin/env bash
# `tune demo` runs every stage on the embedded model (shortened to 30 steps
# here: the full demo is the README's first command) and writes its outputs.
set -u
T=${TUNE:?}
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
$T demo --out "$W/d" --iters 30 > "$W/o" 2> "$W/e" || { tail -20 "$W/e"; echo "FAIL: demo exited $?"; exit 1; }
for f in model/model.safetensors model/tokenizer.json data/train.jsonl trained/model.safetensors trained/log.jsonl trained/loss.svg trained-q8_0.gguf; do
  [ -s "$W/d/$f" ] || { echo "FAIL: demo did not write $f"; exit 1; }
done
python3 - "$W/d/trained/log.jsonl" <<'P' || exit 1
import json,sys
r=[json.loads(l) for l in open(sys.argv[1])]; t=[x["train_loss"] for x in r if "train_loss" in x]
print("demo: train loss %.3f -> %.3f over %d steps"%(t[0],t[-1],len(t)))
assert t[-1]<t[0]-1.0, "the demo's loss did not fall clearly"
P
echo "demo: ok"
