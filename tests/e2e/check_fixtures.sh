#!/usr/bin/env bash
# Every committed fixture (tests/fixtures/*/, made by transformers) through
# `tune check --json`: the parameter count equals transformers'
# num_parameters, the tensors tune's family table expects are exactly the
# names and shapes transformers saved, and the checkpoint shows no problem.
set -u
T=${TUNE:?}
cd "${TUNE_ROOT:-.}"
n=0
for d in tests/fixtures/*/; do
  [ -f "$d/reference.json" ] || continue
  n=$((n+1))
  $T check "$d" --json > /tmp/tune-fx-$$.json || { echo "FAIL: tune check $d exited $?"; exit 1; }
  python3 - "$d" /tmp/tune-fx-$$.json <<'P' || exit 1
import json,sys
d,out=sys.argv[1],sys.argv[2]
ref=json.load(open(d+"/reference.json")); got=json.load(open(out))["model"]
ok=True
if got["params_total"]!=ref["num_parameters"]:
    print("FAIL %s: params %d, transformers %d"%(d,got["params_total"],ref["num_parameters"])); ok=False
if got["tensor_problems"]:
    print("FAIL %s: %s"%(d,got["tensor_problems"])); ok=False
want={t["name"]:t["shape"] for t in ref["tensors"]}
have={t["name"]:t["shape"] for t in got["tensors"]}
if want!=have:
    print("FAIL %s: tensor tables differ: missing %s, extra %s, shapes %s"%(d,sorted(set(want)-set(have))[:5],sorted(set(have)-set(want))[:5],
          [(k,want[k],have[k]) for k in want if k in have and want[k]!=have[k]][:5])); ok=False
print("%-36s params %9d (transformers %9d), %3d tensors: %s"%(d,got["params_total"],ref["num_parameters"],len(have),"ok" if ok else "MISMATCH"))
sys.exit(0 if ok else 1)
P
done
rm -f /tmp/tune-fx-$$.json
[ $n -ge 8 ] || { echo "FAIL: only $n fixtures found"; exit 1; }
echo "check_fixtures: $n fixtures ok"
