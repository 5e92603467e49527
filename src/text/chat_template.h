/* chat_template.h - a model's chat template applied to a conversation, as
 * transformers' apply_chat_template(messages, tools=..., add_generation_prompt=...,
 * **kwargs) renders it.
 *
 * Where the template comes from (as transformers loads it):
 *   MODEL_DIR/chat_template.jinja (the "default" template; named ones in
 *   MODEL_DIR/additional_chat_templates/NAME.jinja), else the
 *   `chat_template` of MODEL_DIR/tokenizer_config.json: a string, or a list
 *   of {"name", "template"}. With a list, a request that carries tools
 *   uses "tool_use" when there is one, otherwise "default".
 *
 * What the template sees: messages, tools and documents (None unless
 * given), add_generation_prompt, the special tokens of tokenizer_config.json
 * / special_tokens_map.json that are set (bos_token, eos_token, unk_token,
 * sep_token, pad_token, cls_token, mask_token as strings, whether written
 * as strings or as {"content": ...}; additional_special_tokens as a list),
 * then the caller's extra variables (enable_thinking, ...).
 *
 *   tn_chat_template *ct = tn_chat_template_load("models/qwen3");
 *   tn_chat_request rq = {.json = line, .json_len = n, .where = "train.jsonl:12",
 *                         .add_generation_prompt = 0};
 *   char *text = tn_chat_template_apply(ct, &rq, &len);   // malloc'd
 *
 * A loaded template may be applied from several threads at once. */
#ifndef TUNE_CHAT_TEMPLATE_H
#define TUNE_CHAT_TEMPLATE_H

#include <stddef.h>
#include <time.h>

typedef struct tn_chat_template tn_chat_template;

/* NULL with a message when the folder has no chat template or it cannot be
 * read. Templates that fail to compile are reported when they are used. */
tn_chat_template *tn_chat_template_load(const char *model_dir);
void tn_chat_template_free(tn_chat_template *ct);

/* Whether the model has a template of this name ("default", "tool_use"). */
int tn_chat_template_has(const tn_chat_template *ct, const char *name);

typedef struct {
    const char *name; /* a template variable */
    const char *json; /* its value, as JSON text */
} tn_chat_var;

typedef struct {
    /* a JSON list of messages, or an object {"messages": [...], "tools"?: [...],
     * "documents"?: [...]} (other keys are ignored: a chat dataset line) */
    const char *json;
    size_t json_len;
    const char *where;         /* names the input in errors */
    int add_generation_prompt;
    const struct tm *now;      /* strftime_now's clock; NULL: local time now */
    const tn_chat_var *vars;   /* extra variables, e.g. enable_thinking */
    size_t n_vars;
} tn_chat_request;

/* The rendering (malloc'd, NUL-terminated, *len without the NUL), or NULL
 * with a message: bad input, a template error with its line:column, or the
 * template's own raise_exception message. */
char *tn_chat_template_apply(const tn_chat_template *ct, const tn_chat_request *rq, size_t *len);

#endif
