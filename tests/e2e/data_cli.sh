#!/usr/bin/env bash
# End to end: `tune data` on the sample datasets of tests/data with the
# fixture models - counts per split, the sample with its masked part, --json
# as one object, the padding fraction recomputed from the batches themselves,
# the batch order as a pure function of (seed, epoch), packing, and the
# problems report (exit 1 when samples are left out).
set -u
T=${TUNE:?set TUNE to the tune binary}
cd "${TUNE_ROOT:-$(dirname "$0")/../..}"
PY=python3
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
L=tests/fixtures/llama
PIN=(--date 2024-07-26 --var 'date_string="26 Jul 2024"')

$T data --help | grep -q "usage: tune data MODEL DATA" || fail "--help"

# The text report: counts, the sample, both parts marked.
$T data $L tests/data/chat --mask-prompt "${PIN[@]}" > "$W/report.txt" 2> "$W/err.txt" || fail "report exited $?: $(cat "$W/err.txt")"
grep -Eq '^train +chat +8 +8 ' "$W/report.txt" || fail "train counts: $(grep '^train' "$W/report.txt")"
grep -Eq '^valid +chat +3 +3 ' "$W/report.txt" || fail "valid counts"
grep -Eq '^test +chat +2 +2 ' "$W/report.txt" || fail "test counts"
grep -q '^  masked  | Today Date: 26 Jul 2024' "$W/report.txt" || fail "masked part not shown"
grep -q '^  trained | Paris.<|eot_id|>$' "$W/report.txt" || fail "trained part: $(grep trained "$W/report.txt")"
grep -q '^problems: 0$' "$W/report.txt" || fail "problems"
[ -s "$W/err.txt" ] && fail "stderr not empty: $(cat "$W/err.txt")"

# --json: one object; the sample's parts; the padding fraction equals the
# one recomputed from the dumped batches (pad slots / all slots).
$T data $L tests/data/chat --mask-prompt --json --batch 3 --seed 5 "${PIN[@]}" > "$W/r.json" || fail "--json exited $?"
$T data $L tests/data/chat --mask-prompt --batch 3 --seed 5 "${PIN[@]}" --dump batches:train:0 > "$W/b0.jsonl" || fail "dump"
$PY - "$W/r.json" "$W/b0.jsonl" <<'EOF' || fail "json report"
import json, sys
r = json.load(open(sys.argv[1]))           # exactly one JSON value
assert r["splits"]["train"]["samples"] == 8 and r["splits"]["valid"]["samples"] == 3, r["splits"]
assert r["splits"]["train"]["format"] == "chat"
s = r["sample"]
assert s["trained_text"] == "Paris.<|eot_id|>", s["trained_text"]
assert s["masked_text"].startswith("<|begin_of_text|>") and s["masked_text"].endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
assert s["masked"] + len(s["ids"][s["masked"]:]) == s["tokens"] == len(s["ids"])
assert r["problems_total"] == 0 and r["problems"] == []
assert sum(b["count"] for b in r["histogram"]) == 13
pad = slots = rows = 0
seen = []
for line in open(sys.argv[2]):
    b = json.loads(line)
    n = b["B"] * b["S"]
    assert len(b["ids"]) == len(b["labels"]) == len(b["positions"]) == len(b["segments"]) == n
    slots += n
    pad += sum(1 for x in b["segments"] if x < 0)
    rows += b["B"]
    assert b["targets"] == sum(1 for x in b["labels"] if x != -100)
    # labels: -100 or the id itself (unshifted)
    assert all(l == -100 or l == i for l, i in zip(b["labels"], b["ids"]))
    # rows are right-padded with the pad id (llama: no pad token -> EOS 510)
    for k in range(b["B"]):
        row = b["segments"][k * b["S"]:(k + 1) * b["S"]]
        first_pad = row.index(-1) if -1 in row else b["S"]
        assert all(x == -1 for x in row[first_pad:])
        assert all(x == 510 for x in b["ids"][k * b["S"] + first_pad:(k + 1) * b["S"]])
tr = r["splits"]["train"]
assert rows == 8 and tr["batches"] == 3, (rows, tr["batches"])
assert abs(tr["padding_fraction"] - pad / slots) < 1e-12, (tr["padding_fraction"], pad, slots)
assert tr["trained_tokens"] == sum(json.loads(l)["targets"] for l in open(sys.argv[2]))
EOF

# Determinism: the same (seed, epoch) gives the same batches; another epoch
# or seed another order, over the same samples.
$T data $L tests/data/chat --mask-prompt --batch 3 --seed 5 "${PIN[@]}" --dump batches:train:0 > "$W/b0b.jsonl"
cmp -s "$W/b0.jsonl" "$W/b0b.jsonl" || fail "same seed and epoch, different batches"
$T data $L tests/data/chat --mask-prompt --batch 3 --seed 5 "${PIN[@]}" --dump batches:train:1 > "$W/b1.jsonl"
$T data $L tests/data/chat --mask-prompt --batch 3 --seed 6 "${PIN[@]}" --dump batches:train:0 > "$W/s6.jsonl"
$PY - "$W/b0.jsonl" "$W/b1.jsonl" "$W/s6.jsonl" <<'EOF' || fail "epochs"
import json, sys
def load(p):
    bs = [json.loads(l) for l in open(p)]
    rows = []
    for b in bs:
        for k in range(b["B"]):
            ids = b["ids"][k * b["S"]:(k + 1) * b["S"]]
            seg = b["segments"][k * b["S"]:(k + 1) * b["S"]]
            rows.append(tuple(i for i, s in zip(ids, seg) if s >= 0))
    return [b["B"] for b in bs], rows
a, b, c = load(sys.argv[1]), load(sys.argv[2]), load(sys.argv[3])
assert sorted(a[1]) == sorted(b[1]) == sorted(c[1]), "epochs hold different samples"
assert a[1] != b[1] or a[1] != c[1], "order does not depend on the epoch or seed"
assert len(a[0]) == len(b[0]) == len(c[0])
EOF

# Packing: isolated restarts positions per sample, shared runs them on.
for mode in isolated shared; do
    $T data $L tests/data/chat --mask-prompt --batch 2 --pack $mode --pack-length 400 "${PIN[@]}" --dump batches > "$W/p.jsonl" || fail "--pack $mode"
    $PY - "$W/p.jsonl" $mode <<'EOF' || fail "--pack $mode batches"
import json, sys
mode = sys.argv[2]
n_samples = 0
for line in open(sys.argv[1]):
    b = json.loads(line)
    assert b["S"] <= 400
    for k in range(b["B"]):
        sl = slice(k * b["S"], (k + 1) * b["S"])
        seg, pos, lab = b["segments"][sl], b["positions"][sl], b["labels"][sl]
        for t in range(len(seg)):
            if seg[t] < 0:
                continue
            start = t == 0 or seg[t - 1] != seg[t]
            if start:
                n_samples += 1
                assert lab[t] == -100, "a sample's first token is never a target"
                assert (pos[t] == 0) if mode == "isolated" else (pos[t] == t)
            else:
                assert pos[t] == pos[t - 1] + 1
assert n_samples == 8, n_samples
EOF
done
$T data $L tests/data/chat --pack sideways > /dev/null 2> "$W/e.txt"; [ $? -eq 2 ] || fail "--pack sideways: expected exit 2"
grep -q "expected isolated" "$W/e.txt" || fail "--pack message: $(cat "$W/e.txt")"

# Formats: completions through the template, text with EOS appended.
$T data $L tests/data/completions --mask-prompt --json "${PIN[@]}" > "$W/c.json" || fail "completions"
$T data $L tests/data/text --json > "$W/t.json" || fail "text"
$PY - "$W/c.json" "$W/t.json" <<'EOF' || fail "formats"
import json, sys
c, t = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert c["splits"]["train"]["format"] == "completions" and c["splits"]["train"]["samples"] == 6
assert c["sample"]["trained_text"] == "Paris.<|eot_id|>", c["sample"]
assert t["splits"]["train"]["format"] == "text" and t["tokens"]["eos_appended"] == 7
assert t["sample"]["masked"] == 0 and t["sample"]["ids"][-1] == 510 and t["sample"]["ids"][0] == 501
EOF

# Problems: every kind is listed with its file and line; samples left out -> exit 1.
$T data $L tests/data/problems --mask-prompt --max-seq-length 100 --json "${PIN[@]}" > "$W/p.json"; rc=$?
[ $rc -eq 1 ] || fail "problems: expected exit 1 (a sample left out), got $rc"
$PY - "$W/p.json" <<'EOF' || fail "problems report"
import json, sys
r = json.load(open(sys.argv[1]))
c = r["problem_counts"]
assert c == {"empty": 1, "role": 1, "too_long": 2, "duplicate": 2, "template": 0, "mask": 1, "no_target": 0}, c
where = {(p["kind"], p["file"].split("/")[-1], p["line"]) for p in r["problems"]}
for w in [("duplicate", "train.jsonl", 2), ("duplicate", "valid.jsonl", 1), ("empty", "train.jsonl", 3),
          ("role", "train.jsonl", 4), ("mask", "train.jsonl", 6), ("too_long", "train.jsonl", 7)]:
    assert w in where, (w, where)
assert r["splits"]["train"]["left_out"] == 1 and r["splits"]["train"]["truncated"] == 2
assert r["splits"]["train"]["blank_lines"] == 1
assert r["splits"]["train"]["length"]["max"] == 100
EOF

# A template that breaks the prefix property is reported, not masked wrongly
# (Mistral v3 drops the system message unless the last message is the user's).
$T data tests/fixtures/mistral tests/data/tools --mask-prompt > "$W/m.txt"; rc=$?
[ $rc -eq 1 ] || fail "mistral tools: expected exit 1, got $rc"
grep -q "tools/train.jsonl:3: mask (left out): --mask-prompt: the chat template renders the conversation without its last message" "$W/m.txt" \
    || fail "mistral mask problem: $(grep -A1 '^problems' "$W/m.txt")"
# Gemma 2 refuses system messages: a template problem naming the line.
$T data tests/fixtures/gemma2 tests/data/tools > "$W/g.txt"; [ $? -eq 1 ] || fail "gemma2 tools: expected exit 1"
grep -q "tools/train.jsonl:1: template (left out): the chat template refused the conversation: .*: System role not supported" "$W/g.txt" || fail "gemma2 problem: $(grep -A3 '^problems' "$W/g.txt")"
echo "data_cli: ok"
