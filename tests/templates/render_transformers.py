#!/usr/bin/env python3
"""Renders the template corpus with transformers itself (the GPU machine has
it; nothing is downloaded): for every job of JOBS (the format of
render_jinja2.py --batch), builds a PreTrainedTokenizerFast carrying the
folder's chat template(s) and special tokens and calls
apply_chat_template(messages, tools=..., documents=..., tokenize=False,
add_generation_prompt=..., **vars), with strftime_now's clock pinned.

    render_transformers.py JOBS OUT.json

OUT.json: {"versions": {...}, "renderings": {ID: {"sha256": hex, "text": str}
or {"error": "Type: message"}}}. transformers_golden.json keeps the hashes.
"""
import datetime
import hashlib
import json
import os
import sys

import transformers
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import render_jinja2  # noqa: E402  (the folder reading: chat_template.jinja, tokenizer_config.json)


def pin_clock(date):
    """strftime_now calls datetime.now() in transformers' chat_template_utils"""
    import transformers.utils.chat_template_utils as ctu

    pinned = datetime.datetime.strptime(date, "%Y-%m-%d")

    class Clock(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return pinned

    ctu.datetime = Clock


def tokenizer_for(model_dir):
    templates, tokens = render_jinja2.load_model(model_dir)
    vocab = {"<unk>": 0}
    for v in tokens.values():
        for t in v if isinstance(v, list) else [v]:
            vocab.setdefault(t, len(vocab))
    kw = {k: v for k, v in tokens.items()}
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel(vocab, unk_token="<unk>")), **kw)
    tok.chat_template = templates
    return tok


def main():
    jobs, out = sys.argv[1], sys.argv[2]
    res = {}
    cache = {}
    with open(jobs, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            job, *argv = line.split("\t")
            model, messages_file, gen, date, variables = render_jinja2.parse_args(argv)
            try:
                if model not in cache:
                    cache[model] = tokenizer_for(model)
                tok = cache[model]
                pin_clock(date)
                with open(messages_file, encoding="utf-8") as mf:
                    data = json.load(mf)
                tools = documents = None
                if isinstance(data, dict):
                    messages, tools, documents = data["messages"], data.get("tools"), data.get("documents")
                else:
                    messages = data
                kwargs = {}
                for v in variables:
                    k, _, text = v.partition("=")
                    kwargs[k] = json.loads(text)
                text = tok.apply_chat_template(messages, tools=tools, documents=documents, tokenize=False,
                                               add_generation_prompt=gen, **kwargs)
                res[job] = {"sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(), "text": text}
            except Exception as e:  # the template raised
                res[job] = {"error": f"{type(e).__name__}: {e}"}
    import jinja2
    versions = {"transformers": transformers.__version__, "jinja2": jinja2.__version__}
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"versions": versions, "renderings": res}, f, ensure_ascii=False)
    print(versions, len(res), "renderings,", sum("error" in r for r in res.values()), "raised")


if __name__ == "__main__":
    main()
