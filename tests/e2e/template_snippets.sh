#!/usr/bin/env bash
# The interpreter piece by piece against Python's jinja2: every small template
# of tests/templates/snippets.json (expressions, filters, tests, methods,
# scoping, loops, macros, whitespace control, errors) rendered by
# tests/templates/render_jinja2.py and by tune template, compared byte for
# byte; where jinja2 raises, tune must fail (exit 2) too.
set -u
ROOT="${TUNE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
TUNE="${TUNE:-$ROOT/build/test/tune}"
cd "$ROOT" || exit 1
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
if ! "$PY" -c 'import jinja2' 2>/dev/null; then
    echo "template_snippets: Python's jinja2 is missing (scripts/setup.sh installs python3-jinja2)"
    exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$TUNE" "$tmp/tune" || exit 1
TUNE="$tmp/tune"
ARGS=(--messages tests/templates/snippets_context.json --date 2024-09-05 --var 'xs=[1, 2, 3]'
      --var 'd={"a": 1, "b": 2}' --var 's="hello"' --var 'uni="héllo wörld 😀"')
"$PY" tests/templates/render_jinja2.py --snippets tests/templates/snippets.json "$tmp/s" "${ARGS[@]}" || exit 1
n=$("$PY" -c 'import json, sys; print(len(json.load(open(sys.argv[1]))))' tests/templates/snippets.json)
bad=0 raised=0
for ((i = 0; i < n; i++)); do
    "$TUNE" template "$tmp/s/$i" "${ARGS[@]}" >"$tmp/$i.out" 2>"$tmp/$i.err"
    rc=$?
    if [ -f "$tmp/s/$i.ref.err" ]; then
        if [ "$rc" -eq 2 ]; then
            raised=$((raised + 1))
            continue
        fi
        what="jinja2 raised $(cat "$tmp/s/$i.ref.err"); tune exit $rc: $(head -c 300 "$tmp/$i.out")"
    elif [ "$rc" -ne 0 ]; then
        what="tune failed (exit $rc): $(head -c 300 "$tmp/$i.err")"
    elif cmp -s "$tmp/s/$i.ref.out" "$tmp/$i.out"; then
        continue
    else
        what="jinja2: $(head -c 400 "$tmp/s/$i.ref.out")
    tune:   $(head -c 400 "$tmp/$i.out")"
    fi
    bad=$((bad + 1))
    echo "MISMATCH snippet $i: $(head -c 300 "$tmp/s/$i/chat_template.jinja")"
    echo "    $what"
done
echo "snippets: $((n - bad))/$n match jinja2 ($raised of them raise in both)"
[ "$bad" -eq 0 ]
