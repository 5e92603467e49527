#!/usr/bin/env python3
"""gguf_same.py - two GGUF files hold the same tensors: names, types, shapes and data bytes.

    gguf_same.py A.gguf B.gguf [--kv]

Tensor order and the key-values around them may differ (llama-quantize
writes tensors in its own order and adds keys); with --kv, every key of A
must also be in B with the same value. Prints a summary; exits 1 naming the
first difference.
"""
import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import gguf_read  # noqa: E402


def tensors(path):
    kv, ts = gguf_read.read(path)
    b = open(path, "rb").read()
    return kv, {t["name"]: (t["type"], t["ne"], b[t["start"]:t["start"] + t["bytes"]]) for t in ts}


def main():
    a, b = sys.argv[1], sys.argv[2]
    kva, ta = tensors(a)
    kvb, tb = tensors(b)
    if set(ta) != set(tb):
        raise SystemExit(f"tensor names differ: only in {a}: {sorted(set(ta) - set(tb))[:5]}, only in {b}: {sorted(set(tb) - set(ta))[:5]}")
    for name in ta:
        if ta[name][:2] != tb[name][:2]:
            raise SystemExit(f"{name}: {ta[name][:2]} in {a}, {tb[name][:2]} in {b}")
        if ta[name][2] != tb[name][2]:
            raise SystemExit(f"{name} ({ta[name][0]}): the data differ")
    if "--kv" in sys.argv:
        for k, v in kva.items():
            if kvb.get(k) != v:
                raise SystemExit(f"key {k}: {str(v)[:60]} in {a}, {str(kvb.get(k))[:60]} in {b}")
    types = {}
    for t, _, _ in ta.values():
        types[t] = types.get(t, 0) + 1
    print(f"{len(ta)} tensors identical ({', '.join(f'{n} {t}' for t, n in sorted(types.items()))})")


if __name__ == "__main__":
    main()
