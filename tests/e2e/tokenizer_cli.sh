#!/usr/bin/env bash
# End to end: the shapes CLI.md fixes for `tune tokenize` / `tune detokenize`
# (stdin verbatim, one JSON array, --no-special, --tokens, --model), pipes
# that round-trip, and bad input: each a clear message and exit 2, never a
# signal or a sanitizer report.
set -u
T=${TUNE:?set TUNE to the tune binary}
cd "${TUNE_ROOT:-$(dirname "$0")/../..}"
M=node_modules/@lenml
L3="$M/tokenizer-llama3/models"; L31="$M/tokenizer-llama3_1/models"; G3="$M/tokenizer-gemma3/models"
[ -f "$L3/tokenizer.json" ] || { echo "FAIL: $L3 missing: run scripts/setup.sh"; exit 1; }
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
eq() { [ "$1" == "$2" ] || fail "$3: got '$1', expected '$2'"; }

# stdin verbatim: the trailing newline is text; the same ids as --jsonl.
a=$(printf 'Hello world\n' | $T tokenize "$L3") || fail "tokenize exited $?"
b=$(echo '{"text": "Hello world\n"}' | $T tokenize "$L3" --jsonl)
eq "$a" "$b" "stdin vs --jsonl"
eq "$a" "[9906, 1917, 198]" "llama3 'Hello world\\n'"
eq "$(printf 'Hello world' | $T tokenize --model "$L31")" "[128000, 9906, 1917]" "llama3.1 adds BOS"
eq "$(printf 'Hello world' | $T tokenize "$L31" --no-special)" "[9906, 1917]" "--no-special"
eq "$(printf '<|begin_of_text|>Hi' | $T tokenize "$L31" --no-special)" "[128000, 13347]" "special token in text"
eq "$(printf 'Hello world' | $T tokenize "$L3" --tokens)" '["Hello", "Ġworld"]' "--tokens"
eq "$(printf '' | $T tokenize "$L3")" "[]" "empty input"
eq "$(printf '' | $T tokenize "$G3")" "[2]" "gemma3 empty input keeps BOS"
# Invalid UTF-8 on stdin: U+FFFD per maximal invalid subpart, as the hex form.
eq "$(printf 'a\xffb\xe2\x82c' | $T tokenize "$L3")" "$(echo '{"hex": "61ff62e28263"}' | $T tokenize "$L3" --jsonl)" "invalid UTF-8"
eq "$(printf 'a\xffb' | $T tokenize "$L3" --no-special | $T detokenize "$L3")" "a�b" "invalid UTF-8 round trip"

# detokenize prints the text and nothing else.
printf '[9906, 1917, 198]' | $T detokenize "$L3" > "$W/d.txt" || fail "detokenize exited $?"
printf 'Hello world\n' | cmp -s - "$W/d.txt" || fail "detokenize: got '$(cat "$W/d.txt")'"
eq "$(echo '[2, 9259, 1902]' | $T detokenize "$G3" --skip-special)" "Hello world" "--skip-special"
for t in llama3 qwen3 gemma3; do
    printf 'Tabs\there, ünïcödé, 数字 123 and  spaces.\n\n' > "$W/in.txt"
    $T tokenize "$M/tokenizer-$t/models" --no-special < "$W/in.txt" | $T detokenize "$M/tokenizer-$t/models" > "$W/out.txt" \
        || fail "$t pipe"
    cmp -s "$W/in.txt" "$W/out.txt" || fail "$t: decode(encode(s)) != s: '$(cat "$W/out.txt")'"
done
$T tokenize --help | grep -q -- "--no-special" || fail "tokenize --help"
$T detokenize --help | grep -q "JSON array" || fail "detokenize --help"

# Bad input: exit 2 and a message naming the problem.
bad() { # expected-text command...
    local want="$1"; shift
    "$@" > "$W/out" 2> "$W/err" < "$W/stdin"; local rc=$?
    [ "$rc" -eq 2 ] || fail "'$*' exited $rc (expected 2); stderr: $(cat "$W/err")"
    grep -q -- "$want" "$W/err" || fail "'$*': stderr lacks '$want': $(cat "$W/err")"
}
echo hi > "$W/stdin"
bad "no such file" $T tokenize "$W/none"
mkdir -p "$W/empty"; bad "missing tokenizer.json" $T tokenize "$W/empty"
bad "no model given" $T tokenize
bad "unknown option '--bogus'" $T tokenize "$L3" --bogus
bad "more than one model" $T tokenize "$L3" "$L3"
mkdir -p "$W/m"
printf '{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []' > "$W/m/tokenizer.json"
bad "tokenizer.json:1:" $T tokenize "$W/m"
echo '{"vocab_size": 3}' > "$W/m/tokenizer.json"
bad "missing field 'model'" $T tokenize "$W/m"
echo '[1, 2]' > "$W/m/tokenizer.json"
bad "expected a tokenizer.json object" $T tokenize "$W/m"
printf '\xff\xfe' > "$W/m/tokenizer.json"
bad "not valid UTF-8" $T tokenize "$W/m"
V='"vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]'
echo "{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", 0.0]]}}" > "$W/m/tokenizer.json"
bad "model type 'Unigram' is not supported" $T tokenize "$W/m"
echo "{\"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}, \"model\": {\"type\": \"BPE\", $V}}" > "$W/m/tokenizer.json"
bad "pre_tokenizer type 'BertPreTokenizer' is not supported" $T tokenize "$W/m"
echo "{\"normalizer\": {\"type\": \"Precompiled\", \"precompiled_charsmap\": \"\"}, \"model\": {\"type\": \"BPE\", $V}}" > "$W/m/tokenizer.json"
bad "normalizer type 'Precompiled' is not supported" $T tokenize "$W/m"
echo "{\"decoder\": {\"type\": \"CTC\"}, \"model\": {\"type\": \"BPE\", $V}}" > "$W/m/tokenizer.json"
bad "decoder type 'CTC' is not supported" $T tokenize "$W/m"
echo "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]}}" > "$W/m/tokenizer.json"
bad "model.merges\[0\]: token 'b' is not in model.vocab" $T tokenize "$W/m"
echo "{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(a\"}, \"behavior\": \"Isolated\"}, \"model\": {\"type\": \"BPE\", $V}}" > "$W/m/tokenizer.json"
bad "PCRE2" $T tokenize "$W/m"
# A minimal tokenizer works, and detokenize refuses ids it does not have.
echo "{\"model\": {\"type\": \"BPE\", $V}}" > "$W/m/tokenizer.json"
eq "$(printf 'abba' | $T tokenize "$W/m")" "[2, 1, 0]" "minimal BPE"
echo '[0, 7]' > "$W/stdin"; bad "token id 7 at position 1 is not in the vocabulary" $T detokenize "$W/m"
echo '{"a": 1}' > "$W/stdin"; bad "expected a JSON array of token ids" $T detokenize "$W/m"
echo '[0, -1]' > "$W/stdin"; bad "item 1" $T detokenize "$W/m"
echo '[0,' > "$W/stdin"; bad "not valid JSON" $T detokenize "$W/m"
echo 'not json' > "$W/stdin"; bad "stdin:1" $T tokenize "$W/m" --jsonl
echo '{"hex": "zz"}' > "$W/stdin"; bad "hex digits" $T tokenize "$W/m" --jsonl
echo "tokenizer cli: ok"
