#!/usr/bin/env bash
# Malformed templates (tests/templates/broken/*.jinja): tune template must
# refuse each with exit 2 and a message naming the template's line and
# column, never crash (the sanitizer build fails with 98/99 on a memory
# error), and Python's jinja2 must refuse it too. Templates jinja2 renders
# but tune does not support (tests/templates/unsupported/*.jinja) must be
# refused the same way, naming the construct.
set -u
ROOT="${TUNE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
TUNE="${TUNE:-$ROOT/build/test/tune}"
cd "$ROOT" || exit 1
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$TUNE" "$tmp/tune" || exit 1
bad=0 n=0
for f in tests/templates/broken/*.jinja tests/templates/unsupported/*.jinja; do
    kind=$(basename "$(dirname "$f")")
    name=$(basename "$f" .jinja)
    n=$((n + 1))
    mkdir -p "$tmp/$name"
    cp "$f" "$tmp/$name/chat_template.jinja"
    args=(--messages tests/templates/corpus/02_system_user.json --date 2024-09-05)
    "$tmp/tune" template "$tmp/$name" "${args[@]}" >"$tmp/$name.out" 2>"$tmp/$name.err"
    rc=$?
    msg=$(head -c 400 "$tmp/$name.err")
    if [ "$rc" -ne 2 ]; then
        echo "FAIL $name: exit $rc (expected 2): $msg"
        bad=$((bad + 1))
    elif ! grep -Eq "chat_template\.jinja:[0-9]+:[0-9]+: " "$tmp/$name.err"; then
        echo "FAIL $name: no line:column in: $msg"
        bad=$((bad + 1))
    elif [ "$kind" = broken ] && "$PY" -c 'import jinja2' 2>/dev/null &&
        "$PY" tests/templates/render_jinja2.py "$tmp/$name" "${args[@]}" >/dev/null 2>&1; then
        echo "FAIL $name: jinja2 renders it, tune refuses: $msg"
        bad=$((bad + 1))
    else
        echo "ok   $name: $msg"
    fi
done
echo "broken and unsupported templates: $((n - bad))/$n refused with a position"
[ "$bad" -eq 0 ]
