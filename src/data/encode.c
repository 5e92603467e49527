#include "data/encode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

/* A growable byte string. */
typedef struct {
    char *p;
    size_t n, cap;
} sbuf;

static int sb_put(sbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->n + n + 1) nc *= 2;
        char *p = realloc(b->p, nc);
        if (!p) return tn_fail("out of memory building a chat");
        b->p = p;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

static int sb_str(sbuf *b, const char *s) { return sb_put(b, s, strlen(s)); }

static int uses_template(const tn_encoder *e, const tn_record *r) {
    if (r->format == TN_FORMAT_CHAT) return 1;
    return r->format == TN_FORMAT_COMPLETIONS && !e->raw_completions && tn_chat_has_template(e->chat);
}

/* The messages JSON of a record: all of them, or (prompt) without the last. */
static int messages_json(const tn_record *r, int prompt, sbuf *b) {
    const char *s = r->line;
    if (r->format == TN_FORMAT_CHAT) {
        if (!prompt) return sb_put(b, s + r->messages.start, r->messages.len);
        /* '[' up to the last element, its separating comma dropped. */
        size_t a = r->messages.start + 1, z = r->last_message.start;
        while (z > a && strchr(" \t\r\n,", s[z - 1])) z--;
        return sb_str(b, "[") || sb_put(b, s + a, z - a) || sb_str(b, "]");
    }
    if (sb_str(b, "[{\"role\": \"user\", \"content\": ") ||
        sb_put(b, s + r->prompt_raw.start, r->prompt_raw.len) || sb_str(b, "}"))
        return -1;
    if (!prompt && (sb_str(b, ", {\"role\": \"assistant\", \"content\": ") ||
                    sb_put(b, s + r->completion_raw.start, r->completion_raw.len) || sb_str(b, "}")))
        return -1;
    return sb_str(b, "]");
}

char *tn_encode_render(tn_encoder *e, const tn_record *r, int prompt, size_t *len) {
    if (!uses_template(e, r)) {
        sbuf b = {0};
        const char *t = r->format == TN_FORMAT_TEXT ? r->text : r->prompt;
        if (sb_str(&b, t) || (!prompt && r->format == TN_FORMAT_COMPLETIONS && sb_str(&b, r->completion))) {
            free(b.p);
            return NULL;
        }
        if (!b.p && sb_str(&b, "")) return NULL;
        *len = b.n;
        return b.p;
    }
    if (!tn_chat_has_template(e->chat)) {
        tn_fail("chat records need a chat template, and the model has none (expected chat_template in "
                "tokenizer_config.json, or chat_template.jinja)");
        return NULL;
    }
    sbuf m = {0};
    if (messages_json(r, prompt, &m)) {
        free(m.p);
        return NULL;
    }
    const char *tools = r->has_tools ? r->line + r->tools.start : NULL;
    char *out = tn_chat_render(e->chat, m.p, m.n, tools, r->has_tools ? r->tools.len : 0, prompt, len);
    free(m.p);
    return out;
}

static int starts_with(const tn_ids *v, const int32_t *p, size_t n) {
    if (v->n < n) return 0;
    for (size_t i = 0; i < n; i++)
        if (v->ids[i] != p[i]) return 0;
    return 1;
}

/* Tokenizes a template's rendering: no special tokens added, but the
 * tokenizer's BOS prefix put in front if the template did not write it. */
static int encode_rendered(tn_encoder *e, const char *text, size_t n, tn_ids *out, int *added) {
    tn_ids v = {0};
    if (tn_tokenizer_encode(e->tok, text, n, 0, &v)) {
        tn_ids_free(&v);
        return -1;
    }
    size_t pn = 0;
    const int32_t *pre = tn_tokenizer_prefix(e->tok, &pn);
    *added = 0;
    if (pn && !starts_with(&v, pre, pn)) {
        *added = 1;
        for (size_t i = 0; i < pn; i++)
            if (tn_ids_push(out, pre[i])) goto oom;
    }
    for (size_t i = 0; i < v.n; i++)
        if (tn_ids_push(out, v.ids[i])) goto oom;
    tn_ids_free(&v);
    return 0;
oom:
    tn_ids_free(&v);
    return tn_fail("out of memory tokenizing a sample");
}

static int is_blank_token(const tn_tokenizer *t, int32_t id) {
    char *s = NULL;
    size_t n = 0;
    if (tn_tokenizer_decode(t, &id, 1, 0, &s, &n)) return 0;
    int blank = 1;
    for (size_t i = 0; i < n; i++)
        if (!strchr(" \t\r\n", s[i])) blank = 0;
    free(s);
    return blank;
}

/* 1 when ids[from..] ends a turn: the last non-whitespace token is special. */
static int turn_ended(const tn_encoder *e, const tn_ids *v, size_t from) {
    size_t i = v->n;
    while (i > from && is_blank_token(e->tok, v->ids[i - 1])) i--;
    if (i == from) return 0;
    int32_t last = v->ids[i - 1];
    return last == e->eos || tn_tokenizer_is_special(e->tok, last);
}

static void quote(const tn_tokenizer *t, int32_t id, char *out, size_t cap) {
    char *s = NULL;
    size_t n = 0;
    if (tn_tokenizer_decode(t, &id, 1, 0, &s, &n)) {
        snprintf(out, cap, "%d", id);
        return;
    }
    size_t o = 0;
    o += (size_t)snprintf(out, cap, "%d '", id);
    for (size_t i = 0; i < n && o + 6 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') o += (size_t)snprintf(out + o, cap - o, "\\n");
        else if (c < 0x20) o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
        else out[o++] = (char)c;
    }
    snprintf(out + o, cap - o, "'");
    free(s);
}

/* A printable excerpt of s from byte at (up to 30 bytes, escapes shown). */
static void excerpt(const char *s, size_t n, size_t at, char *out, size_t cap) {
    size_t o = 0;
    out[o++] = '\'';
    for (size_t i = at; i < n && i < at + 30 && o + 6 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') o += (size_t)snprintf(out + o, cap - o, "\\n");
        else if (c < 0x20) o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
        else out[o++] = (char)c;
    }
    if (at >= n) o = (size_t)snprintf(out, cap, "(the end)");
    else snprintf(out + o, cap - o, "'");
}

/* Explains why prompt ids are not a prefix of the full ids. */
static void explain_mask(const tn_encoder *e, const char *pt, size_t pn, const char *ft, size_t fn,
                         const tn_ids *p, const tn_ids *f) {
    size_t b = 0;
    while (b < pn && b < fn && pt[b] == ft[b]) b++;
    if (b < pn) {
        char a[128], c[128];
        excerpt(pt, pn, b, a, sizeof a);
        excerpt(ft, fn, b, c, sizeof c);
        tn_fail("--mask-prompt: the chat template renders the conversation without its last message "
                "(add_generation_prompt=true) differently from the start of the whole conversation, so the "
                "prompt cannot be masked by token count (expected the prompt text to be a prefix of the full text, "
                "got a difference at byte %zu: prompt %s, full %s)",
                b, a, c);
        return;
    }
    size_t k = 0;
    while (k < p->n && k < f->n && p->ids[k] == f->ids[k]) k++;
    char a[96], c[96];
    if (k < p->n) quote(e->tok, p->ids[k], a, sizeof a);
    else snprintf(a, sizeof a, "(end)");
    if (k < f->n) quote(e->tok, f->ids[k], c, sizeof c);
    else snprintf(c, sizeof c, "(end)");
    tn_fail("--mask-prompt: the prompt's tokens are not a prefix of the full sequence's although its text is: "
            "the tokenizer merges across the boundary (expected token %zu to be %s as in the prompt, got %s)",
            k, a, c);
}

int tn_encode_record(tn_encoder *e, const tn_record *r, tn_ids *ids, int32_t *offset, tn_problem_kind *kind) {
    size_t fn = 0, pn = 0;
    char *full = NULL, *prompt = NULL;
    tn_ids p = {0};
    int rc = 0, added = 0;
    size_t base = ids->n;
    *offset = 0;
    if (e->mask_prompt && r->format == TN_FORMAT_TEXT)
        return tn_fail("--mask-prompt needs prompts: text records have none (expected chat or completions records)");
    full = tn_encode_render(e, r, 0, &fn);
    if (!full) {
        *kind = TN_PROBLEM_TEMPLATE;
        if (!uses_template(e, r) || !tn_chat_has_template(e->chat)) return -1;
        tn_fail_prefix("the chat template refused the conversation");
        return 1;
    }
    int templ = uses_template(e, r);
    if (e->eos < 0 && !templ) {
        tn_fail("the tokenizer has no eos_token to end %s samples with (expected eos_token in tokenizer_config.json)",
                tn_data_format_name(r->format));
        goto fail;
    }
    if (templ) {
        if (encode_rendered(e, full, fn, ids, &added)) goto fail;
        e->bos_added += added;
        if (!turn_ended(e, ids, base)) {
            if (e->eos < 0) {
                tn_fail("the chat template does not end the turn with a special token and the tokenizer has no "
                        "eos_token to append (expected eos_token in tokenizer_config.json)");
                goto fail;
            }
            if (tn_ids_push(ids, e->eos)) goto fail;
            e->eos_added++;
        }
    } else {
        if (tn_tokenizer_encode(e->tok, full, fn, 1, ids)) goto fail;
        if (ids->n == base || ids->ids[ids->n - 1] != e->eos) {
            if (tn_ids_push(ids, e->eos)) goto fail;
            e->eos_added++;
        }
    }
    if (e->mask_prompt) {
        if (r->format == TN_FORMAT_CHAT && strcmp(r->last_role, "assistant")) {
            tn_fail("--mask-prompt: the last message is from '%.60s' (expected the assistant's reply to train on)",
                    r->last_role);
            *kind = TN_PROBLEM_MASK;
            rc = 1;
            goto out;
        }
        prompt = tn_encode_render(e, r, 1, &pn);
        if (!prompt) {
            *kind = TN_PROBLEM_TEMPLATE;
            if (templ) tn_fail_prefix("the chat template refused the conversation without its last message");
            rc = templ ? 1 : -1;
            goto out;
        }
        if (templ) {
            if (encode_rendered(e, prompt, pn, &p, &added)) goto fail;
        } else {
            size_t pre_n = 0;
            const int32_t *pre = tn_tokenizer_prefix(e->tok, &pre_n);
            for (size_t i = 0; i < pre_n; i++)
                if (tn_ids_push(&p, pre[i])) goto fail;
            if (tn_tokenizer_encode(e->tok, prompt, pn, 0, &p)) goto fail;
        }
        tn_ids whole = {ids->ids + base, ids->n - base, 0};
        if (!starts_with(&whole, p.ids, p.n)) {
            explain_mask(e, prompt, pn, full, fn, &p, &whole);
            *kind = TN_PROBLEM_MASK;
            rc = 1;
            goto out;
        }
        *offset = (int32_t)p.n;
    }
    goto out;
fail:
    rc = -1;
out:
    if (rc) ids->n = base;
    free(full);
    free(prompt);
    tn_ids_free(&p);
    return rc;
}
