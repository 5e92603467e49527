#!/usr/bin/env bash
# tune template on the model fixtures (tests/fixtures/*/): each family's
# tokenizer_tests.json records the chat rendering transformers 5.17's
# AutoTokenizer.apply_chat_template made of its messages; tune must print the
# same bytes.
set -u
ROOT="${TUNE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
TUNE="${TUNE:-$ROOT/build/test/tune}"
cd "$ROOT" || exit 1
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0 bad=0
for t in tests/fixtures/*/tokenizer_tests.json; do
    d=$(dirname "$t")
    # messages, arguments and the expected text, from the fixture
    "$PY" - "$t" "$tmp" <<'PYEOF' || continue
import json, sys
t = json.load(open(sys.argv[1], encoding="utf-8"))
c = t.get("chat")
if not c:
    sys.exit(1)
out = sys.argv[2]
json.dump(c["messages"], open(out + "/messages.json", "w", encoding="utf-8"), ensure_ascii=False)
open(out + "/want", "wb").write(c["text"].encode("utf-8"))
args = ["--add-generation-prompt"] if c.get("add_generation_prompt") else []
for k, v in (c.get("extra_context") or {}).items():
    args.append(f"--var={k}={json.dumps(v)}")
open(out + "/args", "w").write("\n".join(args))
PYEOF
    n=$((n + 1))
    mapfile -t args <"$tmp/args"
    if ! "$TUNE" template "$d" --messages "$tmp/messages.json" "${args[@]}" >"$tmp/got" 2>"$tmp/err"; then
        echo "FAIL $d: $(head -c 300 "$tmp/err")"
        bad=$((bad + 1))
    elif ! cmp -s "$tmp/want" "$tmp/got"; then
        echo "FAIL $d: the rendering differs from transformers' ($(cmp "$tmp/want" "$tmp/got" 2>&1 | head -1))"
        bad=$((bad + 1))
    else
        echo "ok   $d"
    fi
done
echo "fixture chat renderings: $((n - bad))/$n match transformers"
[ "$n" -gt 0 ] && [ "$bad" -eq 0 ]
