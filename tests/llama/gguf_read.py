#!/usr/bin/env python3
"""gguf_read.py - an independent GGUF reader for the tests (standard library only).

    gguf_read.py FILE.gguf            prints {"kv": {...}, "tensors": [...]} as JSON

Checks the layout as llama.cpp's gguf.cpp does (magic, version 3, no duplicate
keys or tensor names, names under 64 bytes, at most 4 dimensions, known types,
offsets aligned to general.alignment (32) and each tensor inside the file,
the data section starting aligned) and exits 1 naming the first problem.
Arrays of more than 8 elements are shown as {"array": type, "n": count,
"head": first 8}.
"""
import json
import struct
import sys

TYPE_SIZE = {0: (1, 4), 1: (1, 2), 2: (32, 18), 6: (32, 22), 8: (32, 34), 12: (256, 144), 14: (256, 210), 30: (1, 2)}
TYPE_NAME = {0: "F32", 1: "F16", 2: "Q4_0", 6: "Q5_0", 8: "Q8_0", 12: "Q4_K", 14: "Q6_K", 30: "BF16"}


def read(path):
    b = open(path, "rb").read()
    o = 0

    def take(fmt):
        nonlocal o
        v = struct.unpack_from(fmt, b, o)
        o += struct.calcsize(fmt)
        return v[0]

    def string():
        nonlocal o
        n = take("<Q")
        s = b[o:o + n]
        o += n
        return s.decode("utf-8", "surrogateescape")

    scalar = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}

    def value(t):
        if t == 8:
            return string()
        if t == 9:
            et, n = take("<I"), take("<Q")
            items = [value(et) for _ in range(n)]
            return items if n <= 8 else {"array": et, "n": n, "head": items[:8], "all": items}
        return take(scalar[t])

    def fail(msg):
        raise SystemExit(f"{path}: {msg}")

    if b[:4] != b"GGUF":
        fail("bad magic")
    o = 4
    if take("<I") != 3:
        fail("version is not 3")
    n_t, n_kv = take("<Q"), take("<Q")
    kv = {}
    for _ in range(n_kv):
        k = string()
        if k in kv:
            fail(f"duplicate key {k}")
        kv[k] = value(take("<I"))
    align = kv.get("general.alignment", 32)
    tensors = []
    for _ in range(n_t):
        name = string()
        if len(name.encode()) >= 64:
            fail(f"tensor name {name} is 64 bytes or more")
        nd = take("<I")
        if not 1 <= nd <= 4:
            fail(f"{name}: {nd} dimensions")
        ne = [take("<Q") for _ in range(nd)]
        t = take("<I")
        off = take("<Q")
        if t not in TYPE_SIZE:
            fail(f"{name}: unknown type {t}")
        blk, sz = TYPE_SIZE[t]
        if ne[0] % blk:
            fail(f"{name}: ne[0] {ne[0]} is not a multiple of {TYPE_NAME[t]}'s block {blk}")
        if off % align:
            fail(f"{name}: offset {off} not aligned to {align}")
        n = 1
        for x in ne:
            n *= x
        tensors.append({"name": name, "type": TYPE_NAME[t], "ne": ne, "offset": off, "bytes": n // blk * sz})
    if len({t["name"] for t in tensors}) != len(tensors):
        fail("duplicate tensor names")
    data = (o + align - 1) // align * align
    for t in tensors:
        t["start"] = data + t["offset"]
        if data + t["offset"] + t["bytes"] > len(b):
            fail(f"{t['name']} runs past the end of the file")
    spans = sorted((t["offset"], t["offset"] + t["bytes"], t["name"]) for t in tensors)
    for (a0, a1, an), (b0, _, bn) in zip(spans, spans[1:]):
        if b0 < a1:
            fail(f"tensors {an} and {bn} overlap")
    return kv, tensors


def main():
    kv, tensors = read(sys.argv[1])
    for k, v in kv.items():
        if isinstance(v, dict):
            v.pop("all")
    json.dump({"kv": kv, "tensors": tensors}, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
