#!/usr/bin/env bash
# End to end: `tune generate FILE.gguf` against `tune generate FOLDER`.
# Every fixture family (Granite 4.0-H dense and with experts included)
# exported by `tune export` as F32 gives the same
# greedy text as its folder, raw and through the chat template the GGUF
# carries, with and without a LoRA adapter folder; Q8_0 runs (its text is
# printed beside the folder's: the weights differ, so the greedy tokens may)
# and decodes from its quantized blocks (fp32 activations, TUNE_QMATVEC_FP32=1)
# the same text as from its F32 copy; with int8 activations (the default) it
# runs (its greedy tokens may differ: x is rounded to 8 bits). Dense GGUFs
# are read in place (a GGUF base: layer matrices never copied); Q8_0 and
# Q4_K_M of four fixtures give the same greedy text that way as through the
# whole model dequantized to F32 first (TUNE_GGUF_UNPACK=1).
# Broken GGUF files (truncated, bad magic, duplicate key, tensor past the end,
# misaligned offset, a 2 GB string length claim) and GGUFs tune cannot run
# each give a message naming the file and exit 2, never a signal or a
# sanitizer report. The temporary F32 folder under $TMPDIR is removed after
# every run, failed or not.
set -u
T=${TUNE:?set TUNE to the tune binary}
cd "${TUNE_ROOT:-$(dirname "$0")/../..}"
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
mkdir -p "$W/tmp"
export TMPDIR="$W/tmp"
FX=tests/fixtures
PROMPT="The quick brown fox"

gen() { # MODEL [args...]: greedy text, 24 tokens
    local m=$1; shift
    $T generate "$m" --temp 0 --max-tokens 24 --prompt "$PROMPT" "$@" 2> "$W/err"
}

for f in llama mistral qwen2 gemma2 granite granitehybrid granitehybrid-moe; do
    M=$FX/$f
    for ty in f32 q8_0; do
        $T export $M --gguf $W/$f.$ty.gguf --type $ty 2> $W/err || fail "export $f $ty: $(tail -2 $W/err)"
    done
    for mode in --raw chat; do
        args=(); [ $mode = --raw ] && args=(--raw)
        a=$(gen $M "${args[@]}") || fail "$f $mode: folder: $(tail -2 $W/err)"
        b=$(gen $W/$f.f32.gguf "${args[@]}") || fail "$f $mode: f32 GGUF: $(tail -2 $W/err)"
        case $f in
        granitehybrid*) grep -q "dequantized to F32" $W/err || fail "$f: no unpack line on stderr" ;;
        *) grep -q "read in place, its layer matrices never copied" $W/err || fail "$f: no GGUF-base line on stderr: $(cat $W/err)" ;;
        esac
        [ "$a" == "$b" ] || fail "$f $mode: F32 GGUF generated '$b', the folder '$a'"
        c=$(TUNE_QMATVEC_FP32=1 gen $W/$f.q8_0.gguf "${args[@]}") || fail "$f $mode: q8_0 GGUF: $(tail -2 $W/err)"
        e=$(gen $W/$f.q8_0.gguf "${args[@]}") || fail "$f $mode: q8_0 GGUF, int8 activations: $(tail -2 $W/err)"
        d=$(TUNE_GGUF_FP32=1 gen $W/$f.q8_0.gguf "${args[@]}") || fail "$f $mode: q8_0 GGUF, fp32 copy: $(tail -2 $W/err)"
        [ "$c" == "$d" ] || fail "$f $mode: q8_0 GGUF decoded from its blocks gave '$c', from the dequantized copy '$d'"
        same=different; [ "$a" == "$c" ] && same=same
        echo "$f ${mode#--}: f32 GGUF = folder ($(printf %s "$a" | wc -c) bytes of text); q8_0 GGUF: $same"
    done
    [ -z "$(ls -A $W/tmp)" ] || fail "$f: temporary folders left under TMPDIR: $(ls $W/tmp)"
done

# The GGUF read in place (layer matrices dequantized a layer at a time for
# the prompt, quantized rows read as stored while decoding) against the
# whole model dequantized to an F32 folder first (TUNE_GGUF_UNPACK=1, the
# older path): the same greedy text, with int8 (default) and fp32
# activations, raw and through the chat template. Q4_K_M of llama-wide
# holds Q4_K and Q6_K, of llama the Q5_0 / Q8_0 fallbacks.
for f in llama qwen2 gemma2 llama-wide; do
    for ty in q8_0 q4_k_m; do
        [ -f $W/$f.$ty.gguf ] || $T export $FX/$f --gguf $W/$f.$ty.gguf --type $ty 2> $W/err || fail "export $f $ty: $(tail -2 $W/err)"
        for mode in --raw chat; do
            args=(); [ $mode = --raw ] && args=(--raw)
            for act in int8 fp32; do
                q=; [ $act = fp32 ] && q=1
                a=$(TUNE_QMATVEC_FP32=$q gen $W/$f.$ty.gguf "${args[@]}" --max-tokens 32) || fail "$f $ty: in place: $(tail -2 $W/err)"
                [ -n "$q" ] || grep -q "read in place" $W/err || fail "$f $ty: not read in place: $(cat $W/err)"
                b=$(TUNE_QMATVEC_FP32=$q TUNE_GGUF_UNPACK=1 gen $W/$f.$ty.gguf "${args[@]}" --max-tokens 32) || fail "$f $ty: F32 folder: $(tail -2 $W/err)"
                grep -q "dequantized to F32" $W/err || fail "$f $ty: TUNE_GGUF_UNPACK=1 did not unpack"
                [ "$a" == "$b" ] || fail "$f $ty ${mode#--} $act: read in place gave '$a', through the F32 folder '$b'"
            done
        done
        echo "$f $ty: read in place = through the F32 folder (raw and chat, int8 and fp32 activations)"
    done
    [ -z "$(ls -A $W/tmp)" ] || fail "$f: temporary folders left under TMPDIR: $(ls $W/tmp)"
done

# `tune eval FILE.gguf` reads it the same way: the F32 GGUF's loss is the
# folder's, and the temporary folder goes.
a=$($T eval $FX/llama --data tests/data/chat --max-seq-length 64 --json 2> $W/err) || fail "eval folder: $(tail -2 $W/err)"
b=$($T eval $W/llama.f32.gguf --data tests/data/chat --max-seq-length 64 --json 2> $W/err) || fail "eval f32 GGUF: $(tail -2 $W/err)"
[ "$a" == "$b" ] || fail "eval: F32 GGUF gave $b, the folder $a"
$T eval $W/llama.q4_k_m.gguf --data tests/data/chat --max-seq-length 64 --json > /dev/null 2> $W/err || fail "eval q4_k_m GGUF: $(tail -2 $W/err)"
[ -z "$(ls -A $W/tmp)" ] || fail "eval: temporary folders left under TMPDIR: $(ls $W/tmp)"
echo "eval: f32 GGUF = folder ($a)"

# An adapter folder on a GGUF base: the same text as on the folder.
A=$FX/llama/lora/final_adapter
if [ -d "$A" ]; then
    a=$(gen $FX/llama --raw --adapter $A) || fail "adapter on folder: $(tail -2 $W/err)"
    b=$(gen $W/llama.f32.gguf --raw --adapter $A) || fail "adapter on GGUF: $(tail -2 $W/err)"
    [ "$a" == "$b" ] || fail "adapter: GGUF gave '$b', folder '$a'"
    echo "llama + adapter: f32 GGUF = folder"
fi

# Broken files: exit 2, the file named, the problem said.
python3 - "$W" <<'P'
import struct, sys
w = sys.argv[1]
def s(x): b = x.encode(); return struct.pack("<Q", len(b)) + b
def kv_str(k, v): return s(k) + struct.pack("<I", 8) + s(v)
def kv_u32(k, v): return s(k) + struct.pack("<II", 4, v)
def hdr(nt, nkv, ver=3): return b"GGUF" + struct.pack("<IQQ", ver, nt, nkv)
def info(name, ne, typ, off): return s(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne) + struct.pack("<IQ", typ, off)
def pad(b, a=32): return b + b"\0" * (-len(b) % a)
def save(name, b): open(f"{w}/{name}", "wb").write(b)
base = hdr(2, 1) + kv_str("general.architecture", "llama")
good = pad(base + info("a", [8], 0, 0) + info("b", [8], 0, 32)) + b"\0" * 64
save("truncated.gguf", good[:len(good) // 2])
save("magic.gguf", b"GGML" + good[4:])
save("dupkey.gguf", hdr(0, 2) + kv_u32("llama.block_count", 2) + kv_u32("llama.block_count", 2))
save("pastend.gguf", pad(base + info("a", [8], 0, 0) + info("b", [4096], 0, 32)) + b"\0" * 64)
save("misaligned.gguf", pad(base + info("a", [8], 0, 0) + info("b", [8], 0, 40)) + b"\0" * 64)
save("bigstring.gguf", hdr(0, 1) + s("general.name") + struct.pack("<IQ", 8, 2 << 30) + b"x" * 100)
P
check_bad() { # FILE FRAGMENT
    $T generate "$W/$1" --prompt x --max-tokens 2 > /dev/null 2> $W/err
    rc=$?
    [ $rc -eq 2 ] || fail "$1: exit $rc (expected 2): $(cat $W/err)"
    grep -q "Sanitizer\|runtime error" $W/err && fail "$1: sanitizer report: $(cat $W/err)"
    grep -qF "tune: $W/$1: " $W/err || fail "$1: message does not name the file: $(cat $W/err)"
    grep -qF "$2" $W/err || fail "$1: message lacks '$2': $(cat $W/err)"
    echo "$1: exit 2: $(head -1 $W/err | sed "s|$W/||")"
}
check_bad truncated.gguf "truncated"
check_bad magic.gguf "expected the magic 'GGUF'"
check_bad dupkey.gguf "duplicate key 'llama.block_count'"
check_bad pastend.gguf "runs past the end of the file"
check_bad misaligned.gguf "offset 40 is not a multiple of the alignment 32"
check_bad bigstring.gguf "claims 2147483648 bytes, past the end of the file"
# A valid GGUF tune cannot run: a LoRA adapter.
$T export $FX/llama --adapter $A --gguf-adapter $W/adapter.gguf 2> $W/err || fail "adapter export: $(tail -2 $W/err)"
check_bad adapter.gguf "a LoRA adapter GGUF"
[ -z "$(ls -A $W/tmp)" ] || fail "temporary folders left under TMPDIR after failures: $(ls $W/tmp)"
echo "ok"
