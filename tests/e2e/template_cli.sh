#!/usr/bin/env bash
# tune template's command line: arguments, stdin, exit codes and messages.
set -u
ROOT="${TUNE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
TUNE="${TUNE:-$ROOT/build/test/tune}"
cd "$ROOT" || exit 1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
check() { # name expected-exit command...
    local name=$1 want=$2
    shift 2
    "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    if [ "$rc" -ne "$want" ]; then
        echo "FAIL $name: exit $rc, expected $want; stderr: $(head -c 300 "$tmp/err")"
        fails=$((fails + 1))
        return 1
    fi
    return 0
}
expect_err() { # substring
    grep -qF -- "$1" "$tmp/err" || { echo "FAIL: expected '$1' in stderr: $(head -c 300 "$tmp/err")"; fails=$((fails + 1)); }
}
M=tests/templates/qwen3
C=tests/templates/corpus/02_system_user.json

check help 0 "$TUNE" template --help && grep -q "usage: tune template" "$tmp/out" || echo "FAIL help text"
check basic 0 "$TUNE" template "$M" --messages "$C"
printf '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n' >"$tmp/want"
cmp -s "$tmp/out" "$tmp/want" || { echo "FAIL basic: output differs"; fails=$((fails + 1)); }
check model_option 0 "$TUNE" template --model "$M" --messages "$C" --add-generation-prompt
tail -c 23 "$tmp/out" | grep -q "<|im_start|>assistant" || { echo "FAIL generation prompt"; fails=$((fails + 1)); }
check stdin 0 sh -c "'$TUNE' template '$M' --messages - --var enable_thinking=false --add-generation-prompt < '$C'"
grep -q "<think>" "$tmp/out" || { echo "FAIL --var enable_thinking"; fails=$((fails + 1)); }
check equals_form 0 "$TUNE" template "$M" --messages="$C" --date=2025-01-31

check no_model 2 "$TUNE" template --messages "$C" && expect_err "expected a model folder"
check no_messages 2 "$TUNE" template "$M" && expect_err "expected --messages"
check unknown_option 2 "$TUNE" template "$M" --messages "$C" --frobnicate && expect_err "unknown option '--frobnicate'"
check bad_date 2 "$TUNE" template "$M" --messages "$C" --date 2024-02-30 && expect_err "--date: expected a valid date"
check bad_date_form 2 "$TUNE" template "$M" --messages "$C" --date 5/9/2024 && expect_err "expected YYYY-MM-DD"
check bad_var 2 "$TUNE" template "$M" --messages "$C" --var novalue && expect_err "--var: expected KEY=JSON"
check bad_var_json 2 "$TUNE" template "$M" --messages "$C" --var 'x={oops' && expect_err "variable 'x':1:2:"
check reserved_var 2 "$TUNE" template "$M" --messages "$C" --var 'messages=[]' && expect_err "set by the request"
check missing_file 2 "$TUNE" template "$M" --messages "$tmp/nope.json"
check not_a_folder 2 "$TUNE" template "$tmp/nope" --messages "$C" && expect_err "not a folder"
mkdir -p "$tmp/empty"
check no_template 2 "$TUNE" template "$tmp/empty" --messages "$C" && expect_err "no chat template"
printf '[{"role": "user", "content": "x"},' >"$tmp/bad.json"
check bad_json 2 "$TUNE" template "$M" --messages "$tmp/bad.json" && expect_err "bad.json:1:"
printf '"just a string"' >"$tmp/str.json"
check json_string 2 "$TUNE" template "$M" --messages "$tmp/str.json" && expect_err "expected a list of messages"
check raises 2 "$TUNE" template tests/templates/gemma2-2b-it --messages "$C" && expect_err "chat_template.jinja:1:74: System role not supported"
printf '{"bos_token": "<s>", "chat_template": "{{ x.y }}"}' >"$tmp/empty/tokenizer_config.json"
check runtime_error 2 "$TUNE" template "$tmp/empty" --messages "$C" && expect_err "tokenizer_config.json[chat_template]:1:5: 'x' is undefined"

[ "$fails" -eq 0 ] || { echo "$fails failures"; exit 1; }
echo "template cli: ok"
