/* template.h - a Jinja2 interpreter for chat templates.
 *
 * Renders the subset of Jinja2 that real chat templates use, byte for byte
 * as Python's jinja2 does with Hugging Face's settings
 * (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols,
 * raise_exception, strftime_now, HF's tojson). docs/templates.md lists what
 * is supported; anything else is an error naming the line and column.
 *
 *   tn_template *t = tn_template_compile(src, n, "model/tokenizer_config.json");
 *   tn_template_vars *v = tn_template_vars_new();
 *   tn_template_vars_set_json(v, "messages", json, json_len, "messages.json");
 *   tn_template_vars_set_bool(v, "add_generation_prompt", 1);
 *   char *text = tn_template_render(t, v, &len);   // malloc'd, NUL-terminated
 *
 * Errors: NULL / -1 after tn_fail("NAME:LINE:COL: what"). A template that
 * calls raise_exception(msg) fails with msg as the message's text.
 * A compiled template and a set of variables are read-only while rendering:
 * several threads may render them at once. */
#ifndef TUNE_TEMPLATE_H
#define TUNE_TEMPLATE_H

#include <stddef.h>
#include <time.h>

typedef struct tn_template tn_template;
typedef struct tn_template_vars tn_template_vars;

/* Compiles template text; `name` names it in error messages. */
tn_template *tn_template_compile(const char *src, size_t n, const char *name);
void tn_template_free(tn_template *t);

/* Variables passed to a render. Setting a name twice replaces it. */
tn_template_vars *tn_template_vars_new(void);
void tn_template_vars_free(tn_template_vars *v);
/* The value of a JSON text (JSON integers stay Python ints, numbers with a
 * fraction or exponent floats, as json.loads makes them). */
int tn_template_vars_set_json(tn_template_vars *v, const char *name, const char *json, size_t n,
                              const char *where);
int tn_template_vars_set_string(tn_template_vars *v, const char *name, const char *s);
int tn_template_vars_set_bool(tn_template_vars *v, const char *name, int b);
int tn_template_vars_set_none(tn_template_vars *v, const char *name);
/* A list of strings. */
int tn_template_vars_set_strings(tn_template_vars *v, const char *name, const char *const *s, size_t n);
/* Pins the clock strftime_now() reads (local time otherwise). */
void tn_template_vars_set_time(tn_template_vars *v, const struct tm *tm);

/* Renders; returns malloc'd text (NUL-terminated; *len without the NUL). */
char *tn_template_render(const tn_template *t, const tn_template_vars *v, size_t *len);

#endif
