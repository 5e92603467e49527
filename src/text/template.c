/* template.c - the public face of the interpreter (template.h): compile,
 * variables, and the line:column of error messages. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/template_internal.h"
#include "util/error.h"

void tt_line_col(const char *src, size_t n, uint32_t pos, int *line, int *col) {
    int l = 1, c = 1;
    for (size_t i = 0; i < pos && i < n; i++) {
        if (src[i] == '\n') {
            l++;
            c = 1;
        } else if (((unsigned char)src[i] & 0xC0) != 0x80)
            c++;
    }
    *line = l;
    *col = c;
}

int tt_fail_at(const tn_template *t, uint32_t pos, const char *fmt, ...) {
    char msg[TN_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int line, col;
    tt_line_col(t->src, t->n, pos, &line, &col);
    return tn_fail("%s:%d:%d: %s", t->name, line, col, msg);
}

/* Offset of the first invalid UTF-8 byte, or n. */
static size_t utf8_check(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        uint32_t min, cp;
        if ((c & 0xE0) == 0xC0) {
            k = 2;
            min = 0x80;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            k = 3;
            min = 0x800;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            k = 4;
            min = 0x10000;
            cp = c & 0x07;
        } else
            return i;
        if (i + k > n) return i;
        for (size_t j = 1; j < k; j++) {
            if (((unsigned char)s[i + j] & 0xC0) != 0x80) return i;
            cp = (cp << 6) | ((unsigned char)s[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
        i += k;
    }
    return n;
}

tn_template *tn_template_compile(const char *src, size_t n, const char *name) {
    if (n > ((size_t)1 << 30)) {
        tn_fail("%s: template too large (%zu bytes)", name, n);
        return NULL;
    }
    tn_template *t = calloc(1, sizeof *t);
    if (!t) {
        tn_fail("out of memory compiling a template");
        return NULL;
    }
    t->name = tn_strdup(name ? name : "template");
    t->src = malloc(n + 1);
    if (!t->name || !t->src) {
        tn_template_free(t);
        tn_fail("out of memory compiling a template");
        return NULL;
    }
    /* jinja2 reads newlines as \n, \r\n or \r, writes \n, and drops one
     * trailing newline (keep_trailing_newline is off). */
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (src[i] == '\r') {
            t->src[k++] = '\n';
            if (i + 1 < n && src[i + 1] == '\n') i++;
        } else
            t->src[k++] = src[i];
    }
    if (k > 0 && t->src[k - 1] == '\n') k--;
    t->src[k] = 0;
    t->n = k;
    size_t bad = utf8_check(t->src, t->n);
    if (bad < t->n) {
        tt_fail_at(t, (uint32_t)bad, "not valid UTF-8 (byte 0x%02x)", (unsigned char)t->src[bad]);
        tn_template_free(t);
        return NULL;
    }
    tt_tokens toks = {0};
    int rc = tt_lex(t, &toks);
    if (!rc) rc = tt_parse(t, &toks);
    if (!rc) tt_mark_literals(t->body);
    free(toks.v);
    if (rc) {
        tn_template_free(t);
        return NULL;
    }
    return t;
}

void tn_template_free(tn_template *t) {
    if (!t) return;
    tt_arena_free(&t->arena);
    free(t->name);
    free(t->src);
    free(t);
}

/* ----------------------------------------------------------- variables */

tn_template_vars *tn_template_vars_new(void) {
    tn_template_vars *v = calloc(1, sizeof *v);
    if (!v) tn_fail("out of memory for template variables");
    return v;
}

void tn_template_vars_free(tn_template_vars *v) {
    if (!v) return;
    tt_arena_free(&v->arena);
    free(v);
}

int tt_vars_set_value(tn_template_vars *v, const char *name, tv val) {
    for (size_t i = 0; i < v->n; i++)
        if (!strcmp(v->names[i], name)) {
            v->vals[i] = val;
            return 0;
        }
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        const char **nn = tt_alloc(&v->arena, cap * sizeof *nn);
        tv *nv = tt_alloc(&v->arena, cap * sizeof *nv);
        if (!nn || !nv) return -1;
        if (v->n) {
            memcpy(nn, v->names, v->n * sizeof *nn);
            memcpy(nv, v->vals, v->n * sizeof *nv);
        }
        v->names = nn;
        v->vals = nv;
        v->cap = cap;
    }
    size_t ln = strlen(name);
    char *copy = tt_alloc(&v->arena, ln + 1);
    if (!copy) return -1;
    memcpy(copy, name, ln + 1);
    v->names[v->n] = copy;
    v->vals[v->n] = val;
    v->n++;
    return 0;
}

int tn_template_vars_set_json(tn_template_vars *v, const char *name, const char *json, size_t n, const char *where) {
    tv val;
    if (tt_json_parse(&v->arena, json, n, where ? where : name, &val)) return -1;
    return tt_vars_set_value(v, name, val);
}

int tn_template_vars_set_string(tn_template_vars *v, const char *name, const char *s) {
    tv val;
    if (tv_str_make(&v->arena, s, strlen(s), &val)) return -1;
    return tt_vars_set_value(v, name, val);
}

int tn_template_vars_set_bool(tn_template_vars *v, const char *name, int b) { return tt_vars_set_value(v, name, tv_bool(b)); }

int tn_template_vars_set_none(tn_template_vars *v, const char *name) { return tt_vars_set_value(v, name, tv_none()); }

int tn_template_vars_set_strings(tn_template_vars *v, const char *name, const char *const *s, size_t n) {
    tv_list *l = tt_list_new(&v->arena, n);
    if (!l) return -1;
    for (size_t i = 0; i < n; i++)
        if (tv_str_make(&v->arena, s[i], strlen(s[i]), &l->v[l->n++])) return -1;
    tv val = {.type = TV_LIST};
    val.l = l;
    return tt_vars_set_value(v, name, val);
}

void tn_template_vars_set_time(tn_template_vars *v, const struct tm *tm) {
    v->now = *tm;
    v->have_time = 1;
}
