/* chat.h - a model's chat template as the dataset uses it: "does the model
 * have one", render a list of messages (+ tools) with or without the
 * generation prompt, extra variables and one pinned clock for the whole
 * dataset.
 *
 * A thin layer over text/chat_template.h (which finds the template where
 * transformers does and passes the variables transformers passes). What it
 * adds: a model without a template is not an error here (completions then
 * fall back to plain text), strftime_now() sees one time for every sample
 * (the time of loading unless pinned), and variables given as "KEY=JSON". */
#ifndef TUNE_DATA_CHAT_H
#define TUNE_DATA_CHAT_H

#include <stddef.h>
#include <time.h>

typedef struct tn_chat tn_chat;

/* MODEL is a folder (or the path of a file in it, e.g. its tokenizer.json).
 * A model without a chat template is not an error: tn_chat_has_template()
 * says 0. NULL when tokenizer_config.json or a template file cannot be
 * read. A template that does not compile fails when rendered (its message
 * names the line and column), as a `template` problem of each sample. */
tn_chat *tn_chat_load(const char *model);
void tn_chat_free(tn_chat *c);

int tn_chat_has_template(const tn_chat *c);
/* Where the template came from ("MODEL/tokenizer_config.json"), or NULL. */
const char *tn_chat_origin(const tn_chat *c);

/* An extra template variable from JSON text (date_string, enable_thinking...). */
int tn_chat_set_var(tn_chat *c, const char *name, const char *json, size_t n);
/* "KEY=JSON", as `tune template --var` takes it. */
int tn_chat_set_var_arg(tn_chat *c, const char *arg);
/* Pins the clock strftime_now() reads; tn_chat_time gives the one in use. */
void tn_chat_set_time(tn_chat *c, const struct tm *tm);
const struct tm *tn_chat_time(const tn_chat *c);

/* Renders messages (the JSON text of a list) with tools (JSON text, or NULL
 * for None). Returns the malloc'd text (*len without its NUL), or NULL with
 * the template's message (a raise_exception text, or NAME:LINE:COL: ...). */
char *tn_chat_render(tn_chat *c, const char *messages, size_t n, const char *tools, size_t tools_n,
                     int add_generation_prompt, size_t *len);

#endif
