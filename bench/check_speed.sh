#!/usr/bin/env bash
# Benchmark: `tune check` on an 8B-sized sharded checkpoint (Llama-3.1-8B's
# published config, random bf16 weights, 4 shards, 15 GiB written by
# `tune init`). Goal (issue 2): under 200 ms, never reading weight data (the
# peak RSS shows it). Needs ~16 GiB of free disk; not part of the test suite.
set -eu
cd "$(dirname "$0")/.."
make -s tune
D=${1:-$(mktemp -d)/llama8b}
[ -f "$D/model.safetensors.index.json" ] || ./tune init llama-3.1-8b-instruct --out "$D"
python3 - "$D" <<'P'
import subprocess,sys,time,resource
ts=[]
for i in range(20):
    t=time.perf_counter(); subprocess.run(["./tune","check",sys.argv[1],"--json"],stdout=subprocess.DEVNULL,check=True); ts.append(time.perf_counter()-t)
ts.sort()
print("tune check on 8B sharded: median %.1f ms, max %.1f ms over 20 runs, peak RSS of children %d KiB"%(ts[10]*1e3, ts[-1]*1e3, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
P
