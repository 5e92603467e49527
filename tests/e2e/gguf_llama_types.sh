#!/usr/bin/env bash
# GGUF files written by llama.cpp itself, in the types tune does not write:
# llama.cpp's own quantizer (llama_model_quantize from the prebuilt library in
# node_modules, tests/llama/llama_quantize.c) applied to the F32 export of the
# 256-wide fixture, as Q4_1, Q5_0, Q5_1, Q2_K, Q3_K_M, Q5_K_M, IQ4_NL and
# IQ4_XS (its mixes put Q2_K .. Q6_K, Q4_1, Q5_1, IQ4 tensors in one file).
# `tune generate` reads each (metadata as llama-quantize rewrote it) and runs;
# the dequantizers themselves are checked bit for bit against ggml in
# tests/unit/test_gguf_import.c. The type mix of each file is printed.
set -u
T=${TUNE:?set TUNE to the tune binary}
cd "${TUNE_ROOT:-$(dirname "$0")/../..}"
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
L=$(ls node_modules/@node-llama-cpp/linux-x64/bins/*/libllama.v*.so 2>/dev/null | head -1)
[ -n "$L" ] || fail "llama.cpp's prebuilt libllama is missing under node_modules: run scripts/setup.sh"
cc -O1 -o $W/llama_quantize tests/llama/llama_quantize.c -ldl || fail "building tests/llama/llama_quantize.c"
mkdir -p $W/tmp
export TMPDIR=$W/tmp
M=tests/fixtures/llama-wide
$T export $M --gguf $W/f32.gguf --type f32 2> $W/err || fail "export f32: $(tail -2 $W/err)"
declare -A FTYPE=([q4_1]=3 [q5_0]=8 [q5_1]=9 [q2_k]=10 [q3_k_m]=12 [q5_k_m]=17 [iq4_nl]=25 [iq4_xs]=30)
for ty in q4_1 q5_0 q5_1 q2_k q3_k_m q5_k_m iq4_nl iq4_xs; do
    $W/llama_quantize $L $W/f32.gguf $W/$ty.gguf ${FTYPE[$ty]} 2 > $W/log 2>&1 || fail "llama-quantize $ty: $(tail -3 $W/log)"
    mix=$(python3 - $W/$ty.gguf <<'P'
import collections, struct, sys
b = open(sys.argv[1], "rb").read()
p = 4 + 4
nt, nkv = struct.unpack_from("<QQ", b, p); p += 16
def s():
    global p
    n = struct.unpack_from("<Q", b, p)[0]; p += 8 + n
size = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
def val(t):
    global p
    if t == 8: s()
    elif t == 9:
        et, n = struct.unpack_from("<IQ", b, p); p += 12
        for _ in range(n): val(et)
    else: p += size[t]
for _ in range(nkv):
    s(); t = struct.unpack_from("<I", b, p)[0]; p += 4; val(t)
names = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 20: "IQ4_NL", 23: "IQ4_XS"}
c = collections.Counter()
for _ in range(nt):
    s(); nd = struct.unpack_from("<I", b, p)[0]; p += 4 + 8 * nd
    t = struct.unpack_from("<I", b, p)[0]; p += 12
    c[names.get(t, str(t))] += 1
print(", ".join(f"{n} {k}" for k, n in sorted(c.items())))
P
)
    out=$($T generate $W/$ty.gguf --raw --temp 0 --max-tokens 8 --prompt "Hello world" 2> $W/err) || fail "$ty: tune generate exited $?: $(tail -2 $W/err)"
    grep -q "Sanitizer\|runtime error" $W/err && fail "$ty: sanitizer report: $(cat $W/err)"
    printf '%-7s read and run: %s\n' $ty "$mix"
done
[ -z "$(ls -A $W/tmp)" ] || fail "temporary folders left under TMPDIR: $(ls $W/tmp)"
echo ok
