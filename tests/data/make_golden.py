#!/usr/bin/env python3
"""Reference token ids for the sample datasets in tests/data, computed the way
mlx-lm's tuner/datasets.py computes them, with Hugging Face transformers and
the fixture models' tokenizers (tests/fixtures/<family>).

For every record of tests/data/{chat,completions,text,tools}/*.jsonl and every
fixture family, writes to tests/data/golden/<family>.json:
  ids          the sample's ids
                 chat:         apply_chat_template(messages, tools=tools, tokenize=True)
                 completions:  the same for [user: prompt, assistant: completion]
                 text:         tokenizer.encode(text) + [eos] unless it ends with eos
                 raw (completions without template): encode(prompt + completion) + [eos]
  prompt_ids   mlx-lm's --mask-prompt prefix: apply_chat_template(messages[:-1],
               tools=tools, add_generation_prompt=True, tokenize=True)
               (raw: encode(prompt)); the offset is len(prompt_ids)
  prefix       whether prompt_ids is a prefix of ids (mlx-lm never checks; where it
               is false, tune must refuse to mask the sample)
  text, prompt_text   the renderings (tokenize=False), for debugging
  error        what transformers raised, if it did (the template refused the record)

strftime_now is pinned to 2024-07-26 and date_string="26 Jul 2024" is passed, as
`tune data --date 2024-07-26 --var date_string='"26 Jul 2024"'` does.

Run on the GPU machine (transformers is installed there), from the repository root:
    python3 tests/data/make_golden.py --out tests/data/golden
"""
import argparse
import datetime
import glob
import json
import os
import sys

FAMILIES = ["llama", "mistral", "qwen2", "gemma2", "granite", "granitehybrid"]
DATE = datetime.datetime(2024, 7, 26, 12, 0, 0)
DATE_STRING = "26 Jul 2024"


def pin_clock():
    """transformers' chat templates get strftime_now(fmt) = datetime.now().strftime(fmt), a
    closure over chat_template_utils' module-level `datetime`: pin that class's now()."""
    import transformers.utils.chat_template_utils as ctu

    class Pinned(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return DATE

    ctu.datetime = Pinned
    for name in dir(ctu):
        obj = getattr(ctu, name)
        if hasattr(obj, "cache_clear"):
            obj.cache_clear()


def as_ids(x):
    if isinstance(x, dict) or hasattr(x, "keys"):
        x = x["input_ids"]
    return list(x)


def chat_ids(tok, messages, tools, add_generation_prompt):
    kw = dict(tools=tools, add_generation_prompt=add_generation_prompt, date_string=DATE_STRING)
    text = tok.apply_chat_template(messages, tokenize=False, **kw)
    ids = as_ids(tok.apply_chat_template(messages, tokenize=True, return_dict=False, **kw))
    return text, ids


def write_compact(out, f):
    """JSON with one record a line (small diffs, small files)."""
    f.write("{\n")
    for k in out:
        if k != "files":
            f.write(" %s: %s,\n" % (json.dumps(k), json.dumps(out[k], ensure_ascii=False)))
    f.write(' "files": {\n')
    items = list(out["files"].items())
    for i, (path, recs) in enumerate(items):
        f.write("  %s: [\n" % json.dumps(path))
        f.write(",\n".join("   " + json.dumps(r, ensure_ascii=False) for r in recs))
        f.write("\n  ]%s\n" % ("," if i + 1 < len(items) else ""))
    f.write(" }\n}\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/data/golden")
    ap.add_argument("--fixtures", default="tests/fixtures")
    args = ap.parse_args()
    import transformers
    from transformers import AutoTokenizer
    pin_clock()
    os.makedirs(args.out, exist_ok=True)
    files = sorted(glob.glob("tests/data/chat/*.jsonl") + glob.glob("tests/data/completions/*.jsonl") +
                   glob.glob("tests/data/text/*.jsonl") + glob.glob("tests/data/tools/*.jsonl"))
    for fam in FAMILIES:
        tok = AutoTokenizer.from_pretrained(os.path.join(args.fixtures, fam))
        eos = tok.eos_token_id
        out = {"family": fam, "transformers": transformers.__version__, "date": DATE.strftime("%Y-%m-%d"),
               "date_string": DATE_STRING, "eos": eos, "files": {}}
        # the pinned clock must reach the templates
        probe = tok.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False,
                                        chat_template="{{ strftime_now('%Y-%m-%d') }}")
        assert probe == "2024-07-26", "strftime_now not pinned: %r" % probe
        for path in files:
            recs = []
            for lineno, line in enumerate(open(path, encoding="utf-8"), 1):
                if not line.strip():
                    continue
                d = json.loads(line)
                r = {"line": lineno}
                try:
                    if "prompt" in d and "completion" in d:
                        tools = d.get("tools")
                        msgs = [{"role": "user", "content": d["prompt"]},
                                {"role": "assistant", "content": d["completion"]}]
                        r["text"], r["ids"] = chat_ids(tok, msgs, tools, False)
                        r["prompt_text"], r["prompt_ids"] = chat_ids(tok, msgs[:1], tools, True)
                        raw = tok.encode(d["prompt"] + d["completion"])
                        if raw[-1] != eos:
                            raw.append(eos)
                        r["raw_ids"] = raw
                        r["raw_prompt_ids"] = tok.encode(d["prompt"])
                    elif "messages" in d:
                        msgs, tools = d["messages"], d.get("tools")
                        r["text"], r["ids"] = chat_ids(tok, msgs, tools, False)
                        r["prompt_text"], r["prompt_ids"] = chat_ids(tok, msgs[:-1], tools, True)
                    else:
                        ids = tok.encode(d["text"])
                        if not ids or ids[-1] != eos:
                            ids.append(eos)
                        r["ids"] = ids
                except Exception as e:  # the template refused the record
                    r = {"line": lineno, "error": "%s: %s" % (type(e).__name__, e)}
                if "prompt_ids" in r:
                    p = r["prompt_ids"]
                    r["prefix"] = r["ids"][:len(p)] == p
                recs.append(r)
            out["files"][path] = recs
        with open(os.path.join(args.out, fam + ".json"), "w", encoding="utf-8") as f:
            write_compact(out, f)
        n = sum(len(v) for v in out["files"].values())
        bad = [(p, r["line"]) for p, v in out["files"].items() for r in v if r.get("prefix") is False]
        err = [(p, r["line"], r["error"][:80]) for p, v in out["files"].items() for r in v if "error" in r]
        print(fam, n, "records; not a prefix:", bad, "; errors:", err)


if __name__ == "__main__":
    sys.exit(main())
