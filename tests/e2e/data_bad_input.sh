#!/usr/bin/env bash
# End to end: bad datasets. Each is one clear message on stderr,
# "tune: FILE:LINE: what was wrong (expected X, got Y)", exit 2, and never a
# signal or a sanitizer report - including a 50 MB line made here, which the
# reader streams over instead of loading.
set -u
T=${TUNE:?set TUNE to the tune binary}
cd "${TUNE_ROOT:-$(dirname "$0")/../..}"
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
L=tests/fixtures/llama

# expect_error NAME EXPECTED-MESSAGE [tune data options...]: runs tune data on
# $W/NAME as the train split and checks exit 2 and the message.
expect_error() {
    local name=$1 want=$2; shift 2
    $T data $L --train "$W/$name" "$@" > "$W/out.txt" 2> "$W/err.txt"
    local rc=$?
    [ $rc -eq 2 ] || fail "$name: expected exit 2, got $rc ($(head -c 400 "$W/err.txt"))"
    grep -Eq 'Sanitizer|runtime error' "$W/err.txt" && fail "$name: sanitizer report: $(head -c 600 "$W/err.txt")"
    [ "$(wc -l < "$W/err.txt")" -eq 1 ] || fail "$name: expected one line on stderr, got: $(cat "$W/err.txt")"
    local got; got=$(cat "$W/err.txt")
    [[ "$got" == "tune: $W/$name"* ]] || fail "$name: message does not start with 'tune: FILE': $got"
    [[ "$got" == *"$want"* ]] || fail "$name: expected '$want' in: $got"
    [ -s "$W/out.txt" ] && fail "$name: stdout not empty"
    return 0
}

printf '{"text": "ok"}\n{"text": "a",}\n' > "$W/malformed.jsonl"
expect_error malformed.jsonl "malformed.jsonl:2: not valid JSON at column 14 (expected valid JSON, got '}')"

printf '{"text": "ok"}\n{"text": "cut off' > "$W/truncated.jsonl"
expect_error truncated.jsonl "truncated.jsonl:2: not valid JSON: the line ends inside a string (expected a closing '\"', got the end of the line)"

printf '{"messages": "hello"}\n' > "$W/wrong_type.jsonl"
expect_error wrong_type.jsonl "wrong_type.jsonl:1: field 'messages': expected a list of messages, got a string"

printf '{"messages": [{"role": "user", "content": ["x"]}]}\n' > "$W/wrong_part.jsonl"
expect_error wrong_part.jsonl "wrong_part.jsonl:1: messages[0].content[0]: expected an object such as {\"type\": \"text\", \"text\": ...}, got a string"

printf '{"prompt": "p", "completion": "c"}\n{"prompt": "only a prompt"}\n' > "$W/missing.jsonl"
expect_error missing.jsonl "missing.jsonl:2: not a completions record (expected 'prompt' and 'completion' as on line 1, got keys 'prompt')"

printf '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant"}]}\n' > "$W/no_content.jsonl"
expect_error no_content.jsonl "no_content.jsonl:1: messages[1] (assistant): missing field 'content' (expected a string)"

printf '{"prompt": "p", "completion": 3}\n' > "$W/number.jsonl"
expect_error number.jsonl "number.jsonl:1: field 'completion': expected a string, got a number"

printf '{"text": "fine"}\n{"text": "caf\xe9"}\n' > "$W/latin1.jsonl"
expect_error latin1.jsonl "latin1.jsonl:2: invalid UTF-8 at byte 14 of the line (expected UTF-8 text, got byte 0xE9)"

printf '{"text": "a\x00b"}\n' > "$W/nul.jsonl"
expect_error nul.jsonl "nul.jsonl:1: not valid JSON: a raw control character U+0000 inside a string at column 12 (expected it escaped, as \\u00XX)"
printf '{"text": "a\\u0000b"}\n' > "$W/nul_escape.jsonl"
expect_error nul_escape.jsonl "nul_escape.jsonl:1: a \\u0000 (NUL) escape at column 12 (expected text without NUL characters)"

: > "$W/empty.jsonl"
expect_error empty.jsonl "empty.jsonl: empty (expected JSON lines with one record each, got an empty file)"

printf '\n\n   \n' > "$W/blank.jsonl"
expect_error blank.jsonl "blank.jsonl: empty (expected JSON lines with one record each, got only blank lines)"

printf '{"text": "a"}\n{"messages": [{"role": "user", "content": "b"}]}\n' > "$W/mixed.jsonl"
expect_error mixed.jsonl "mixed.jsonl:2: a chat record in a text file (expected 'text' as on line 1, got keys 'messages'); a file holds one format"

printf '"just a string"\n' > "$W/scalar.jsonl"
expect_error scalar.jsonl "scalar.jsonl:1: expected a JSON object, got a string"

printf '{"instruction": "x", "output": "y"}\n' > "$W/alpaca.jsonl"
expect_error alpaca.jsonl "alpaca.jsonl:1: not a chat, completions or text record (expected 'messages', 'prompt' and 'completion', or 'text', got keys 'instruction', 'output')"

printf '{"text": "a"}\n' > "$W/text.jsonl"
expect_error text.jsonl "text.jsonl:1: --mask-prompt needs prompts, and text records have none" --mask-prompt

# Deep nesting (cJSON stops at 1000 levels): an error, not a stack overflow.
{ printf '{"text": "a", "x": '; head -c 5000 /dev/zero | tr '\0' '['; head -c 5000 /dev/zero | tr '\0' ']'; printf '}\n'; } > "$W/deep.jsonl"
expect_error deep.jsonl "deep.jsonl:1: not valid JSON"

# A 50 MB line: refused by its length (default limit 16 MiB), streamed over.
{ printf '{"text": "ok"}\n{"text": "'; head -c 52428800 /dev/zero | tr '\0' a; printf '"}\n'; } > "$W/huge.jsonl"
expect_error huge.jsonl "huge.jsonl:2: line too long (expected a JSON record of at most 16 MiB, got 52428812 bytes; --max-line-bytes raises the limit)"
# ... and with a limit it fits, it is read, tokenized and truncated (the line
# has 50 MB of 'a': a 1 MiB cut of it keeps the test fast under the sanitizers).
{ printf '{"text": "'; head -c 1048576 /dev/zero | tr '\0' a; printf '"}\n'; } > "$W/long.jsonl"
$T data $L --train "$W/long.jsonl" --max-seq-length 64 --json > "$W/long.json" 2> "$W/err.txt" || fail "a 1 MiB line: exit $? $(head -c 300 "$W/err.txt")"
grep -q '"truncated":	1' "$W/long.json" || fail "a 1 MiB line: not truncated"

# Usage errors: exit 2 with a message.
usage() {
    $T data "$@" > /dev/null 2> "$W/err.txt"
    local rc=$?
    [ $rc -eq 2 ] || fail "tune data $*: expected exit 2, got $rc"
    grep -q '^tune: ' "$W/err.txt" || fail "tune data $*: no message: $(cat "$W/err.txt")"
}
usage $L tests/data/nowhere
usage $L tests/fixtures
usage "$W" tests/data/chat
usage $L tests/data/chat --batch 0
usage $L tests/data/chat --max-seq-length
usage $L tests/data/chat --frobnicate
usage $L tests/data/chat --date 2024-02-30
usage $L tests/data/chat --var 'x=not json'
usage $L
echo "data_bad_input: ok"
