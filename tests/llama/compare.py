#!/usr/bin/env python3
"""compare.py - tune's own forward pass against llama.cpp on exported GGUF files.

    compare.py PLAN.json LLAMA.json

PLAN.json: {"checks": [{"name", "family", "type", "ref": "tune logits output",
             "run": "name of a run in LLAMA.json", "tol"?: 1e-3, "greedy"?: true,
             "margin"?: 1e-2, "table"?: "source"}],
            "pairs": [{"name", "a": run, "b": run, "tol"}],
            "tokens": [{"name", "run", "tests": "tokenizer_tests.json", "nfc": bool}]}
LLAMA.json: tests/llama/gguf_eval.mjs's output.

For each check: the largest |p_tune - p_llama| over every position and token
(held to `tol` when given: the f32 exports), the top token at every position
where tune's top-1 / top-2 margin exceeds `margin` (default 1e-2; must be
equal),
and, when `greedy` is set, the same greedy continuation. Pairs compare two
llama.cpp runs (the GGUF adapter applied at run time against the fused GGUF).
Tokens: llama.cpp's tokenizer, built from the GGUF's tokenizer metadata, on
the fixture's tokenizer_tests.json strings and chat rendering, against the
ids Hugging Face's tokenizers gave (ids_no_special, chat.ids). With "nfc"
(a tokenizer whose normalizer is NFC: Qwen2), strings that NFC changes are
left out: llama.cpp does not normalise.
Prints one line per check and exits 1 on any failure.
"""
import json
import sys
import unicodedata

MARGIN = 1e-2


def top2(row):
    a = b = -1.0
    ia = -1
    for i, p in enumerate(row):
        if p > a:
            b, a, ia = a, p, i
        elif p > b:
            b = p
    return ia, a - b


def compare(ref_probs, probs, min_margin=MARGIN):
    worst, worst_at = 0.0, None
    top_bad = []
    for t, (r, q) in enumerate(zip(ref_probs, probs)):
        if len(r) != len(q):
            raise SystemExit(f"vocabulary sizes differ: {len(r)} vs {len(q)}")
        for v, (x, y) in enumerate(zip(r, q)):
            if abs(x - y) > worst:
                worst, worst_at = abs(x - y), (t, v)
        ir, margin = top2(r)
        iq, _ = top2(q)
        if margin > min_margin and ir != iq:
            top_bad.append((t, ir, iq, margin))
    return worst, worst_at, top_bad


def main():
    plan = json.load(open(sys.argv[1]))
    runs = {r["name"]: r for r in json.load(open(sys.argv[2]))["runs"]}
    failures = 0
    print(f"{'check':34} {'max |dp|':>10}  {'at (pos, token)':>16}  top-1  greedy")
    for c in plan["checks"]:
        ref = json.load(open(c["ref"]))
        run = runs[c["run"]]
        worst, at, top_bad = compare(ref["probs"], run["probs"], c.get("margin", MARGIN))
        ok = True
        notes = []
        if "tol" in c and worst > c["tol"]:
            ok = False
            notes.append(f"max |dp| {worst:.3g} > {c['tol']:g}")
        if top_bad:
            ok = False
            notes.append("top token differs at " + ", ".join(f"pos {t} (tune {a}, llama.cpp {b}, margin {m:.3f})" for t, a, b, m in top_bad[:3]))
        g = "-"
        if c.get("greedy"):
            same = ref["greedy"] == run["greedy"][: len(ref["greedy"])]
            g = "same" if same else "DIFF"
            if not same:
                ok = False
                notes.append(f"greedy tune {ref['greedy']} vs llama.cpp {run['greedy']}")
        tops = "-" if c.get("margin", MARGIN) >= 1 else "ok" if not top_bad else "DIFF"
        print(f"{c['name']:34} {worst:10.3g}  {str(at):>16}  {tops:5}  {g}" + ("" if ok else "   FAIL: " + "; ".join(notes)))
        failures += not ok
    for p in plan.get("pairs", []):
        worst, at, top_bad = compare(runs[p["a"]]["probs"], runs[p["b"]]["probs"])
        ok = worst <= p["tol"] and not top_bad
        print(f"{p['name']:34} {worst:10.3g}  {str(at):>16}  {'ok' if not top_bad else 'DIFF':5}  -" + ("" if ok else "   FAIL"))
        failures += not ok
    for tk in plan.get("tokens", []):
        tests = json.load(open(tk["tests"]))
        texts = [c["text"] for c in tests["cases"]] + [tests["chat"]["text"]]
        want = [c["ids_no_special"] for c in tests["cases"]] + [tests["chat"]["ids"]]
        got = runs[tk["run"]]["tokens"]
        bad, skipped = [], 0
        for text, w, g in zip(texts, want, got):
            if tk.get("nfc") and unicodedata.normalize("NFC", text) != text:
                skipped += 1
                continue
            if w != g:
                bad.append((text[:24], w[:8], g[:8]))
        note = f" ({skipped} left out: NFC changes them, llama.cpp does not normalise)" if skipped else ""
        print(f"{tk['name']:34} tokens: {len(texts) - skipped - len(bad)}/{len(texts) - skipped} strings identical to Hugging Face{note}"
              + ("" if not bad else "   FAIL: " + "; ".join(f"{t!r}: HF {w} llama.cpp {g}" for t, w, g in bad[:2])))
        failures += bool(bad)
    # The summary the issue asks for: the largest difference per family and type.
    for which, title in (("source", "tune on the source folder"), ("file", "tune on the GGUF's own weights (--dequantized)")):
        table = {}
        for c in plan["checks"]:
            if c.get("table", "source") != which:
                continue
            ref = json.load(open(c["ref"]))
            worst, _, _ = compare(ref["probs"], runs[c["run"]]["probs"])
            table.setdefault(c["family"], {})[c["type"]] = worst
        if not table:
            continue
        types = []
        for row in table.values():
            for t in row:
                if t not in types:
                    types.append(t)
        print(f"\nlargest |p_llama.cpp - p_tune| per family and type, against {title}:")
        print(f"{'family':12}" + "".join(f"{t:>11}" for t in types))
        for fam, row in table.items():
            print(f"{fam:12}" + "".join(f"{row[t]:11.2e}" if t in row else f"{'-':>11}" for t in types))
    if failures:
        print(f"\n{failures} check(s) failed")
        sys.exit(1)


if __name__ == "__main__":
    main()
