/* cmd_template.c - `tune template MODEL_DIR --messages FILE.json`: the
 * model's chat template applied to a conversation, printed as is. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "text/chat_template.h"
#include "util/error.h"
#include "util/platform.h"

static const char help[] =
    "usage: tune template MODEL_DIR --messages FILE.json [--add-generation-prompt]\n"
    "                     [--date YYYY-MM-DD] [--var KEY=JSON]...\n\n"
    "Prints the model's chat template applied to a conversation, exactly as\n"
    "transformers' apply_chat_template renders it (Python's jinja2), and nothing else.\n\n"
    "The template is MODEL_DIR/chat_template.jinja, else the 'chat_template' of\n"
    "MODEL_DIR/tokenizer_config.json (with a list of named templates, \"tool_use\" when\n"
    "tools are given, else \"default\"). bos_token, eos_token, ... come from the same files.\n\n"
    "options:\n"
    "  --messages FILE          a JSON list of messages, or {\"messages\": [...], \"tools\": [...]}\n"
    "                           (- reads stdin)\n"
    "  --add-generation-prompt  end with the assistant's turn header\n"
    "  --date YYYY-MM-DD        the day strftime_now() sees (default: now)\n"
    "  --var KEY=JSON           a template variable, e.g. --var enable_thinking=false\n"
    "  --model DIR              the model folder (same as the positional MODEL_DIR)\n\n"
    "exit: 0 printed; 2 bad usage or input, including a template that fails or raises\n"
    "(raise_exception: its message is printed).\n";

static int parse_date(const char *s, struct tm *tm) {
    int y, m, d;
    char extra;
    if (sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &extra) != 3 || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return tn_fail("--date: expected YYYY-MM-DD, got '%s'", s);
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1] || (m == 2 && d == 29 && !leap))
        return tn_fail("--date: expected a valid date, got '%s'", s);
    memset(tm, 0, sizeof *tm);
    tm->tm_year = y - 1900;
    tm->tm_mon = m - 1;
    tm->tm_mday = d;
    tm->tm_isdst = -1;
    return 0;
}

static char *read_stdin(size_t *n) {
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        tn_fail("out of memory reading stdin");
        return NULL;
    }
    for (;;) {
        if (len == cap) {
            char *nb = cap < ((size_t)1 << 31) ? realloc(buf, cap * 2) : NULL;
            if (!nb) {
                free(buf);
                tn_fail("stdin: too large (expected at most 2 GiB)");
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
        size_t k = fread(buf + len, 1, cap - len, stdin);
        len += k;
        if (k == 0) break;
    }
    *n = len;
    return buf;
}

int cmd_template(int argc, char **argv) {
    const char *model = NULL, *messages = NULL, *date = NULL, *v;
    int gen = 0, rc = TN_EXIT_USAGE;
    tn_chat_var *vars = calloc((size_t)argc, sizeof *vars);
    char **owned = calloc((size_t)argc, sizeof *owned);
    size_t nvars = 0;
    char *text = NULL, *out = NULL;
    tn_chat_template *ct = NULL;
    if (!vars || !owned) {
        fprintf(stderr, "tune: out of memory\n");
        free(vars);
        free(owned);
        return TN_EXIT_FAILED;
    }
    tn_args a = tn_args_start(argc, argv, "template");
    while (tn_args_next(&a)) {
        if (tn_arg_flag(&a, "--help") || tn_arg_flag(&a, "-h")) {
            fputs(help, stdout);
            rc = TN_EXIT_OK;
            goto done;
        } else if (tn_arg_value(&a, "--messages", &v)) messages = v;
        else if (tn_arg_value(&a, "--model", &v)) model = v;
        else if (tn_arg_value(&a, "--date", &v)) date = v;
        else if (tn_arg_flag(&a, "--add-generation-prompt")) gen = 1;
        else if (tn_arg_value(&a, "--var", &v)) {
            if (!v) break;
            const char *eq = strchr(v, '=');
            if (!eq || eq == v) {
                tn_fail("--var: expected KEY=JSON, got '%s'", v);
                a.failed = 1;
                break;
            }
            char *name = malloc((size_t)(eq - v) + 1);
            if (!name) {
                tn_fail("out of memory");
                a.failed = 1;
                break;
            }
            memcpy(name, v, (size_t)(eq - v));
            name[eq - v] = 0;
            owned[nvars] = name;
            vars[nvars].name = name;
            vars[nvars].json = eq + 1;
            nvars++;
        } else if (tn_arg_positional(&a, &v)) {
            if (model) {
                tn_fail("tune template: unexpected argument '%s' (the model is '%s')", v, model);
                a.failed = 1;
                break;
            }
            model = v;
        } else
            tn_arg_unknown(&a);
    }
    if (a.failed) goto fail;
    if (!model) {
        tn_fail("tune template: expected a model folder (see tune template --help)");
        goto fail;
    }
    if (!messages) {
        tn_fail("tune template: expected --messages FILE.json (see tune template --help)");
        goto fail;
    }
    struct tm day;
    if (date && parse_date(date, &day)) goto fail;
    size_t n = 0;
    text = !strcmp(messages, "-") ? read_stdin(&n) : tn_read_file(messages, (size_t)1 << 31, &n);
    if (!text) goto fail;
    ct = tn_chat_template_load(model);
    if (!ct) goto fail;
    tn_chat_request rq = {text, n, !strcmp(messages, "-") ? "stdin" : messages, gen, date ? &day : NULL, vars, nvars};
    size_t len;
    out = tn_chat_template_apply(ct, &rq, &len);
    if (!out) goto fail;
    if (fwrite(out, 1, len, stdout) != len || fflush(stdout)) {
        tn_fail("stdout: write failed");
        rc = TN_EXIT_FAILED;
        goto fail;
    }
    rc = TN_EXIT_OK;
    goto done;
fail:
    fprintf(stderr, "tune: %s\n", tn_error());
done:
    free(out);
    free(text);
    tn_chat_template_free(ct);
    for (size_t i = 0; i < nvars; i++) free(owned[i]);
    free(owned);
    free(vars);
    return rc;
}
