#!/usr/bin/env python3
"""The reference for `tune template`: renders a model folder's chat template
with Python's jinja2 set up as Hugging Face transformers sets it up
(apply_chat_template: ImmutableSandboxedEnvironment with trim_blocks,
lstrip_blocks, loopcontrols and its {% generation %} tag; raise_exception, strftime_now and HF's own
tojson), without transformers itself (Debian's python3-jinja2 is enough).

Single rendering, same arguments as `tune template`:
    render_jinja2.py MODEL_DIR --messages FILE.json [--add-generation-prompt]
                     [--date YYYY-MM-DD] [--var KEY=JSON]...
prints the rendering (UTF-8, nothing added); a template error goes to stderr
with exit status 2.

Snippets (small templates, each made into a model folder):
    render_jinja2.py --snippets SNIPPETS.json OUTDIR ARGS...
SNIPPETS.json is a list of template texts; writes OUTDIR/N/chat_template.jinja
and renders it with ARGS (as above, without MODEL_DIR) into OUTDIR/N.out or
OUTDIR/N.err.

Batch (one process for a whole corpus):
    render_jinja2.py --batch JOBS OUTDIR
JOBS has one job per line: "ID<TAB>arg<TAB>arg..." (the arguments above);
writes OUTDIR/ID.out (the rendering) or OUTDIR/ID.err (the error).
"""
import datetime
import json
import os
import sys

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

TOKEN_KEYS = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"]


class Usage(Exception):
    pass


class AssistantTracker(Extension):
    """transformers' {% generation %}...{% endgeneration %}: renders its body"""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_generation_support"), [], [], body).set_lineno(lineno)

    @jinja2.pass_eval_context
    def _generation_support(self, context, caller):
        return caller()


def make_env(now):
    # as transformers.utils.chat_template_utils._compile_jinja_template
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return now.strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[AssistantTracker, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def token_text(v):
    if isinstance(v, dict):
        v = v.get("content")
    return v


def load_model(model_dir):
    """(templates: str or {name: str}, special tokens map) as transformers loads them"""
    templates = None
    tokens = {}
    jinja_file = os.path.join(model_dir, "chat_template.jinja")
    if os.path.exists(jinja_file):
        with open(jinja_file, encoding="utf-8") as f:
            templates = {"default": f.read()}
        extra = os.path.join(model_dir, "additional_chat_templates")
        if os.path.isdir(extra):
            for name in sorted(os.listdir(extra)):
                if name.endswith(".jinja"):
                    with open(os.path.join(extra, name), encoding="utf-8") as f:
                        templates[name[: -len(".jinja")]] = f.read()
        if len(templates) == 1:
            templates = templates["default"]
    cfg_file = os.path.join(model_dir, "tokenizer_config.json")
    for path in (cfg_file, os.path.join(model_dir, "special_tokens_map.json")):
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as f:
            cfg = json.load(f)
        for k in TOKEN_KEYS:
            if k in cfg:
                tokens[k] = token_text(cfg[k])
        if "additional_special_tokens" in cfg and cfg["additional_special_tokens"] is not None:
            tokens["additional_special_tokens"] = [token_text(t) for t in cfg["additional_special_tokens"]]
        if path == cfg_file and templates is None and cfg.get("chat_template") is not None:
            t = cfg["chat_template"]
            templates = t if isinstance(t, str) else {e["name"]: e["template"] for e in t}
    # special_tokens_map keeps only the truthy ones
    tokens = {k: v for k, v in tokens.items() if v}
    if templates is None:
        raise Usage(f"{model_dir}: no chat template")
    return templates, tokens


def parse_args(argv):
    model = messages = date = None
    gen = False
    variables = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--messages":
            messages = argv[i + 1]
            i += 1
        elif a == "--date":
            date = argv[i + 1]
            i += 1
        elif a == "--var":
            variables.append(argv[i + 1])
            i += 1
        elif a == "--add-generation-prompt":
            gen = True
        elif a == "--model":
            model = argv[i + 1]
            i += 1
        else:
            model = a
        i += 1
    return model, messages, gen, date, variables


def render(argv):
    model, messages_file, gen, date, variables = parse_args(argv)
    templates, tokens = load_model(model)
    with open(messages_file, encoding="utf-8") as f:
        data = json.load(f)
    tools = documents = None
    if isinstance(data, dict):
        messages = data["messages"]
        tools = data.get("tools")
        documents = data.get("documents")
    else:
        messages = data
    if isinstance(templates, dict):
        # as PreTrainedTokenizerBase.get_chat_template
        if tools is not None and "tool_use" in templates:
            template = templates["tool_use"]
        elif "default" in templates:
            template = templates["default"]
        else:
            raise Usage("several chat templates and none named default")
    else:
        template = templates
    if date:
        now = datetime.datetime.strptime(date, "%Y-%m-%d")
    else:
        now = datetime.datetime.now()
    kwargs = dict(tokens)
    for v in variables:
        k, _, text = v.partition("=")
        kwargs[k] = json.loads(text)
    env = make_env(now)
    compiled = env.from_string(template)
    return compiled.render(messages=messages, tools=tools, documents=documents, add_generation_prompt=gen, **kwargs)


def run_to_files(argv, base):
    try:
        text = render(argv)
        with open(base + ".out", "wb") as o:
            o.write(text.encode("utf-8"))
    except Exception as e:  # the template raised, or bad input
        with open(base + ".err", "w", encoding="utf-8") as o:
            o.write(f"{type(e).__name__}: {e}\n")


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "--snippets":
        with open(sys.argv[2], encoding="utf-8") as f:
            snippets = json.load(f)
        out = sys.argv[3]
        for i, text in enumerate(snippets):
            d = os.path.join(out, str(i))
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "chat_template.jinja"), "w", encoding="utf-8", newline="") as f:
                f.write(text)
            run_to_files([d] + sys.argv[4:], d + ".ref")
        return 0
    if len(sys.argv) == 4 and sys.argv[1] == "--batch":
        os.makedirs(sys.argv[3], exist_ok=True)
        with open(sys.argv[2], encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\n")
                if not line:
                    continue
                job, *argv = line.split("\t")
                run_to_files(argv, os.path.join(sys.argv[3], job))
        return 0
    try:
        text = render(sys.argv[1:])
    except Exception as e:
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 2
    sys.stdout.buffer.write(text.encode("utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
