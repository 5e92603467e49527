#!/usr/bin/env bash
# tune template against Python's jinja2 (tests/templates/render_jinja2.py, set
# up as transformers sets it up): every fixture template x every conversation
# in tests/templates/corpus x the variants below, compared byte for byte.
# Each rendering is also checked against tests/templates/transformers_golden.json:
# the SHA-256 of what transformers' own apply_chat_template printed (or that it
# raised), made once on the GPU machine by render_transformers.py.
# Where jinja2 raises (the template's raise_exception, or an error), tune must
# fail too. Prints matched/total per template; any difference fails the test
# and prints where the outputs part, with context.
set -u
ROOT="${TUNE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
TUNE="${TUNE:-$ROOT/build/test/tune}"
cd "$ROOT" || exit 1
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
if ! "$PY" -c 'import jinja2' 2>/dev/null; then
    echo "template_corpus: Python's jinja2 is missing (scripts/setup.sh installs python3-jinja2)"
    exit 1
fi
DATE=2024-09-05
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# a private copy: a rebuild during the run must not swap the binary under it
cp "$TUNE" "$tmp/tune" || { echo "template_corpus: cannot copy $TUNE"; exit 1; }
TUNE="$tmp/tune"

# variants: one line each, tab-separated extra arguments ("-" = none)
variants() {
    echo "-"
    echo "--add-generation-prompt"
    case "$1" in
    qwen3*)
        printf -- '--add-generation-prompt\t--var\tenable_thinking=false\n'
        printf -- '--var\tenable_thinking=true\n' ;;
    granite3*)
        printf -- '--add-generation-prompt\t--var\tthinking=true\n'
        printf -- '--add-generation-prompt\t--var\tcontrols={"citations": true, "length": "short"}\n' ;;
    llama3.1-8b*)
        printf -- '--add-generation-prompt\t--var\ttools_in_user_message=false\n'
        printf -- '--var\tdate_string="01 Jan 2025"\t--var\tbuiltin_tools=["brave_search", "wolfram_alpha"]\n' ;;
    esac
}

jobs="$tmp/jobs"
[ "${1:-}" = --jobs ] && jobs="$2" # only write the job list (for render_transformers.py)
: >"$jobs"
n=0
for dir in tests/templates/*/; do
    dir=${dir%/}
    name=$(basename "$dir")
    [ -f "$dir/tokenizer_config.json" ] || [ -f "$dir/chat_template.jinja" ] || continue
    [ "$name" = corpus ] && continue
    for case in tests/templates/corpus/*.json; do
        k=0
        while IFS= read -r extra; do
            n=$((n + 1))
            k=$((k + 1))
            id="$name.$(basename "$case" .json).$k"
            line="$id	$name	$dir	--messages	$case	--date	$DATE"
            [ "$extra" != "-" ] && line="$line	$extra"
            printf '%s\n' "$line" >>"$jobs"
        done < <(variants "$name")
    done
done

[ "${1:-}" = --jobs ] && exit 0

# the reference, in one Python process
cut -f1,3- "$jobs" >"$tmp/pyjobs"
"$PY" tests/templates/render_jinja2.py --batch "$tmp/pyjobs" "$tmp/ref" || { echo "render_jinja2.py failed"; exit 1; }

show_diff() { # expected actual
    "$PY" - "$1" "$2" <<'EOF'
import sys
a = open(sys.argv[1], "rb").read()
b = open(sys.argv[2], "rb").read()
i = 0
while i < min(len(a), len(b)) and a[i] == b[i]:
    i += 1
lo = max(0, i - 60)
print(f"    first difference at byte {i} (jinja2 {len(a)} bytes, tune {len(b)} bytes)")
print(f"    jinja2: ...{a[lo:i + 60]!r}")
print(f"    tune:   ...{b[lo:i + 60]!r}")
EOF
}

# the golden hashes: "ID<TAB>sha256-or-error"
"$PY" -c 'import json, sys
for k, v in json.load(open(sys.argv[1]))["renderings"].items(): print(k + "\t" + v)' \
    tests/templates/transformers_golden.json >"$tmp/golden" || exit 1
declare -A golden
while IFS=$'\t' read -r gid gv; do golden[$gid]=$gv; done <"$tmp/golden"

declare -A total ok
fails=0 hf_checked=0
while IFS=$'\t' read -r -a f; do
    id=${f[0]}
    name=${f[1]}
    args=("${f[@]:2}")
    total[$name]=$(( ${total[$name]:-0} + 1 ))
    out="$tmp/$id.tune"
    "$TUNE" template "${args[@]}" >"$out" 2>"$tmp/$id.tune_err"
    rc=$?
    g=${golden[$id]:-}
    if [ -n "$g" ]; then
        hf_checked=$((hf_checked + 1))
        if [ "$g" = error ]; then
            [ "$rc" -eq 2 ] || { fails=$((fails + 1)); echo "MISMATCH $name (transformers raised, tune did not): ${args[*]}"; continue; }
        else
            h=$(sha256sum <"$out" | cut -d' ' -f1)
            [ "$rc" -eq 0 ] && [ "$h" = "$g" ] || { fails=$((fails + 1)); echo "MISMATCH $name (transformers' rendering differs): ${args[*]}"; continue; }
        fi
    fi
    if [ -f "$tmp/ref/$id.err" ]; then
        if [ "$rc" -eq 2 ]; then
            ok[$name]=$(( ${ok[$name]:-0} + 1 ))
        else
            fails=$((fails + 1))
            echo "MISMATCH $name: ${args[*]}"
            echo "    jinja2 raised: $(head -c 300 "$tmp/ref/$id.err")"
            echo "    tune exit $rc, printed $(head -c 200 "$out" | od -c | head -3)"
        fi
    elif [ "$rc" -ne 0 ]; then
        fails=$((fails + 1))
        echo "MISMATCH $name: ${args[*]}"
        echo "    tune failed (exit $rc): $(head -c 400 "$tmp/$id.tune_err")"
    elif cmp -s "$tmp/ref/$id.out" "$out"; then
        ok[$name]=$(( ${ok[$name]:-0} + 1 ))
    else
        fails=$((fails + 1))
        echo "MISMATCH $name: ${args[*]}"
        show_diff "$tmp/ref/$id.out" "$out"
    fi
done <"$jobs"

echo "template renderings matching jinja2 (matched/total):"
for name in $(printf '%s\n' "${!total[@]}" | sort); do
    printf '  %-26s %d/%d\n' "$name" "${ok[$name]:-0}" "${total[$name]}"
done
[ "$fails" -eq 0 ] || { echo "$fails renderings differ"; exit 1; }
echo "all $n renderings match jinja2; $hf_checked of them checked against transformers' golden hashes too"
