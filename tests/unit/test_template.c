/* test_template.c - the chat-template interpreter piece by piece: the
 * lexer's tokens and whitespace control, string escapes, the parser's
 * errors (with line and column) for broken and unsupported syntax, values
 * printed as Python prints them (floats, reprs, JSON), undefined values,
 * filters, tests, methods, scoping, macros, raise_exception, strftime_now,
 * JSON input, malformed templates (no crash, an error with a position), and
 * loading a model folder's templates and special tokens.
 * The e2e tests template_corpus.sh / template_snippets.sh compare against
 * Python's jinja2 itself; these pin behaviour without Python. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "text/chat_template.h"
#include "text/template.h"
#include "text/template_internal.h"
#include "util/error.h"

static void assert_contains(const char *hay, const char *needle) {
    if (!hay || !strstr(hay, needle)) fail_msg("expected '%s' in '%s'", needle, hay ? hay : "(null)");
}

/* Renders src with xs=[1,2,3], d={"a":1,"b":2}, s="hello", a pinned date;
 * returns malloc'd output or NULL (error in tn_error()). */
static char *render(const char *src) {
    tn_template *t = tn_template_compile(src, strlen(src), "t.jinja");
    if (!t) return NULL;
    tn_template_vars *v = tn_template_vars_new();
    assert_non_null(v);
    assert_int_equal(tn_template_vars_set_json(v, "xs", "[1, 2, 3]", 9, "xs"), 0);
    assert_int_equal(tn_template_vars_set_json(v, "d", "{\"a\": 1, \"b\": 2}", 16, "d"), 0);
    assert_int_equal(tn_template_vars_set_string(v, "s", "hello"), 0);
    const char *msgs = "[{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"yo\"}]";
    assert_int_equal(tn_template_vars_set_json(v, "messages", msgs, strlen(msgs), "messages"), 0);
    struct tm tm = {0};
    tm.tm_year = 2024 - 1900;
    tm.tm_mon = 8;
    tm.tm_mday = 5;
    tn_template_vars_set_time(v, &tm);
    size_t n;
    char *out = tn_template_render(t, v, &n);
    if (out) assert_int_equal(strlen(out), n);
    tn_template_vars_free(v);
    tn_template_free(t);
    return out;
}

static void expect(const char *src, const char *want) {
    char *out = render(src);
    if (!out) fail_msg("'%s' failed: %s", src, tn_error());
    if (strcmp(out, want)) fail_msg("'%s'\n  got  '%s'\n  want '%s'", src, out, want);
    free(out);
}

static void expect_error(const char *src, const char *where, const char *what) {
    tn_clear_error();
    char *out = render(src);
    if (out) fail_msg("'%s' rendered '%s', expected an error", src, out);
    assert_contains(tn_error(), where);
    if (what) assert_contains(tn_error(), what);
}

/* ---- lexer ---- */

static void test_lexer_tokens(void **state) {
    const char *src = "a {{ x|f(1, 'b') }} {%- if y -%} c{% endif %}";
    tn_template t = {0};
    t.name = "t";
    t.src = (char *)src;
    t.n = strlen(src);
    tt_tokens toks = {0};
    assert_int_equal(tt_lex(&t, &toks), 0);
    const int want[] = {TK_DATA, TK_VAR_BEGIN, TK_NAME, TK_PIPE, TK_NAME, TK_LPAREN, TK_INT, TK_COMMA, TK_STRING,
                        TK_RPAREN, TK_VAR_END, TK_BLOCK_BEGIN, TK_NAME, TK_NAME, TK_BLOCK_END, TK_DATA,
                        TK_BLOCK_BEGIN, TK_NAME, TK_BLOCK_END, TK_EOF};
    assert_int_equal(toks.n, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < toks.n; i++) assert_int_equal(toks.v[i].type, want[i]);
    /* "a " before {{ stays; " " before {%- is stripped, as is the one after -%} */
    assert_int_equal(toks.v[0].n, 2);
    assert_int_equal(toks.v[15].n, 1);
    assert_memory_equal(toks.v[15].s, "c", 1);
    assert_int_equal(toks.v[6].i, 1);
    assert_int_equal(toks.v[8].n, 1);
    assert_int_equal(toks.v[2].pos, 5); /* x */
    free(toks.v);
    tt_arena_free(&t.arena);
}

static void test_whitespace_control(void **state) {
    expect("{% if true %}\nA\n{% endif %}\nB", "A\nB");               /* trim_blocks */
    expect("  {% if true %}A{% endif %}", "A");                       /* lstrip_blocks */
    expect("x  {% if true %}A{% endif %}", "x  A");                   /* not at line start */
    expect("  {%+ if true %}A{% endif %}", "  A");                    /* + keeps */
    expect("{% if true +%}\nA{% endif %}", "\nA");
    expect("a  {%- if true -%}  b  {%- endif -%}  c", "abc");
    expect("  {{ 'v' }}  \n", "  v  ");                              /* no lstrip for {{ */
    expect("a\n  {# c #}\nb", "a\nb");
    expect("{{- ' x ' -}}\n\n{{ 'y' }}", " x y");
    expect("{% raw %}{{ x }}{% endraw %}", "{{ x }}");
    expect("x\r\ny\rz\n", "x\ny\nz");                                 /* newlines; one trailing \n dropped */
    expect("x\n\n", "x\n");
    expect("{{ {'a': {'b': 1}}['a']['b'] }}", "1");                   /* }} inside braces */
}

static void test_string_escapes(void **state) {
    expect("{{ '\\x41\\101\\u00e9\\U0001F600' }}", "AAé😀");
    expect("{{ 'a\\tb\\\\c\\'d\\\"e' }}", "a\tb\\c'd\"e");
    expect("{{ '\\q' }}", "\\q"); /* unknown escapes keep the backslash */
    expect("{{ 'a' 'b' \"c\" }}", "abc");
    expect_error("{{ '\\x4' }}", "t.jinja:1:5:", "truncated");
    expect_error("{{ '\\N{DASH}' }}", "t.jinja:1:5:", "not supported");
}

/* ---- parser errors and unsupported syntax ---- */

static void test_parse_errors(void **state) {
    expect_error("{% if %}", "t.jinja:1:7:", "expected an expression");
    expect_error("line\n{{ 1 + }}", "t.jinja:2:8:", "expected an expression");
    expect_error("{% if true %}x", "t.jinja:1:15:", "expected 'elif', 'else' or 'endif'");
    expect_error("{% endif %}", "t.jinja:1:4:", "unknown tag 'endif'");
    expect_error("{{ (1 }}", "t.jinja:1:7:", "expected ')'");
    expect_error("{{ 'open }}", "t.jinja:1:4:", "unterminated string");
    expect_error("{# open", "t.jinja:1:1:", "missing end of comment");
    expect_error("{% raw %}x", "t.jinja:1:1:", "missing end of raw");
    expect_error("{{ x|nosuch }}", "t.jinja:1:6:", "no filter named 'nosuch'");
    expect_error("{{ x is nosuch }}", "t.jinja:1:9:", "no test named 'nosuch'");
    expect_error("{% break %}", "t.jinja:1:4:", "outside of a loop");
    expect_error("{% macro m(a=1, b) %}{% endmacro %}", "t.jinja:1:17:", "non-default argument");
    expect_error("{{ f(a=1, 2) }}", "t.jinja:1:", "positional argument after a keyword");
    expect_error("{{ 1 $ 2 }}", "t.jinja:1:6:", "unexpected character '$'");
    expect_error("{{ 99999999999999999999 }}", "t.jinja:1:4:", "too large");
    expect_error("\xff", "t.jinja:1:1:", "not valid UTF-8");
    /* an unknown filter inside an if fails only when it runs, as in jinja2 */
    expect("{% if false %}{{ x|nosuch }}{% endif %}ok", "ok");
    expect_error("{% if true %}{{ x|nosuch }}{% endif %}", "t.jinja:1:19:", "no filter named 'nosuch'");
}

static void test_unsupported(void **state) {
    expect_error("{% include 'x' %}", "t.jinja:1:4:", "'include' tag is not supported");
    expect_error("{% extends 'x' %}", "t.jinja:1:4:", "'extends' tag is not supported");
    expect_error("\n  {% block b %}{% endblock %}", "t.jinja:2:6:", "'block' tag is not supported");
    expect_error("{% import 'x' as y %}", "t.jinja:1:4:", "'import' tag is not supported");
    expect_error("{% for x in xs recursive %}{% endfor %}", "t.jinja:1:16:", "recursive loops are not supported");
    expect_error("{{ xs|groupby('a') }}", "t.jinja:1:7:", "filter 'groupby' is not supported");
    expect_error("{{ s.encode() }}", "t.jinja:1:12:", "str.encode() is not supported");
    expect_error("{{ cycler(1) }}", "t.jinja:1:10:", "cycler() is not supported");
    expect_error("{{ 2 ** 64 }}", "t.jinja:1:6:", "64 bits");
}

/* ---- values as Python prints them ---- */

static void test_python_values(void **state) {
    expect("{{ 1 }}|{{ 1.0 }}|{{ 1e16 }}|{{ 1e15 }}|{{ 0.0001 }}|{{ 1e-05 }}|{{ 0.1 + 0.2 }}|{{ -0.0 }}",
           "1|1.0|1e+16|1000000000000000.0|0.0001|1e-05|0.30000000000000004|-0.0");
    expect("{{ none }}|{{ true }}|{{ [1, 'a', none] }}|{{ (1,) }}|{{ () }}|{{ {'k': \"it's\"} }}",
           "None|True|[1, 'a', None]|(1,)|()|{'k': \"it's\"}");
    expect("{{ ['a\\nb', '\\x01', 'é'] }}", "['a\\nb', '\\x01', 'é']");
    expect("{{ 7 / 2 }}|{{ 7 // 2 }}|{{ -7 // 2 }}|{{ -7 % 3 }}|{{ 2 ** -1 }}|{{ 'ab' * 2 }}", "3.5|3|-4|2|0.5|abab");
    expect("{{ 1 == 1.0 }}|{{ [1] == (1,) }}|{{ 'b' > 'a' }}|{{ 1 < 2 < 3 }}|{{ 0 or 'x' }}|{{ 1 and 'y' }}",
           "True|False|True|True|x|y");
    expect("{{ d.items() }}|{{ range(3) }}|{{ d.keys()|list }}", "dict_items([('a', 1), ('b', 2)])|range(0, 3)|['a', 'b']");
    char buf[40];
    const struct {
        double x;
        const char *s;
    } floats[] = {{1.5, "1.5"}, {100.0, "100.0"}, {1e22, "1e+22"}, {1.5e-7, "1.5e-07"}, {123456789.125, "123456789.125"},
                  {1.0 / 3, "0.3333333333333333"}, {5e-324, "5e-324"}, {1.7976931348623157e308, "1.7976931348623157e+308"}};
    for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++) {
        tt_fmt_float(floats[i].x, buf);
        assert_string_equal(buf, floats[i].s);
    }
}

static void test_tojson(void **state) {
    expect("{{ {'a': [1, 2.0, none, true, 'é\"']}|tojson }}", "{\"a\": [1, 2.0, null, true, \"é\\\"\"]}");
    expect("{{ {'a': [1, {}]}|tojson(indent=2) }}", "{\n  \"a\": [\n    1,\n    {}\n  ]\n}");
    expect("{{ {'b': 1, 'a': 2}|tojson(sort_keys=true) }}", "{\"a\": 2, \"b\": 1}");
    expect("{{ 'é😀'|tojson(ensure_ascii=true) }}", "\"\\u00e9\\ud83d\\ude00\"");
    expect("{{ d|tojson(separators=(',', ':')) }}", "{\"a\":1,\"b\":2}");
    expect("{{ {1: 'x', none: 'y'}|tojson }}", "{\"1\": \"x\", \"null\": \"y\"}");
    expect_error("{{ u|tojson }}", "t.jinja:1:6:", "Undefined is not JSON serializable");
}

/* ---- undefined ---- */

static void test_undefined(void **state) {
    expect("[{{ u }}]{{ u is defined }}{{ u|default('d') }}{{ u|length }}{{ 'x' in u }}{{ u == u2 }}", "[]Falsed0FalseTrue");
    expect("{% for x in u %}{{ x }}{% else %}e{% endfor %}{% if not u %}f{% endif %}{{ u ~ 'c' }}", "efc");
    expect("{{ d.nope is defined }}|{{ xs[9] is defined }}|{{ d['nope'] }}|", "False|False||");
    expect_error("{{ u.x }}", "t.jinja:1:5:", "'u' is undefined");
    expect_error("{{ u + 1 }}", "t.jinja:1:6:", "'u' is undefined");
    expect_error("{{ d.nope.deeper }}", "t.jinja:1:10:", "'dict object' has no attribute 'nope'");
    expect_error("{{ xs.append(1) }}", "t.jinja:1:13:", "access to attribute 'append' of 'list' object is unsafe");
}

/* ---- filters, tests, methods ---- */

static void test_filters(void **state) {
    expect("{{ '  a  '|trim }}|{{ xs|join(',') }}|{{ xs|first }}{{ xs|last }}|{{ xs|length }}|{{ s|upper }}",
           "a|1,2,3|13|3|HELLO");
    expect("{{ messages|map(attribute='role')|join(' ') }}|{{ messages|selectattr('role', 'eq', 'user')|list|length }}",
           "user assistant|1");
    expect("{{ xs|select('odd')|list }}|{{ xs|reject('odd')|list }}|{{ [3, 1, 2]|sort }}|{{ [1, 1, 2]|unique|list }}",
           "[1, 3]|[2]|[1, 2, 3]|[1, 2]");
    expect("{{ 'a\\nb'|indent(2) }}|{{ '4.7'|int }}|{{ 'x'|float }}|{{ 'aXa'|replace('a', 'b') }}|{{ d|dictsort }}",
           "a\n  b|4|0.0|bXb|[('a', 1), ('b', 2)]");
    expect("{% if xs|select('gt', 5) %}generator is truthy{% endif %}", "generator is truthy");
    expect("{{ ''|default('d', true) }}|{{ none|default('d') }}|{{ 'hello world'|title }}|{{ 2.675|round(2) }}",
           "d|None|Hello World|2.67");
    expect("{{ '%s=%05.1f' % ('x', 3.14159) }}|{{ '{}-{:>3}'.format('a', 1) }}", "x=003.1|a-  1");
}

static void test_tests_and_methods(void **state) {
    expect("{{ 1 is number }}{{ 'a' is string }}{{ d is mapping }}{{ xs is sequence }}{{ none is none }}{{ u is iterable }}",
           "TrueTrueTrueTrueTrueTrue");
    expect("{{ 3 is odd }}{{ 9 is divisibleby 3 }}{{ 2 is in [2] }}{{ 1 is eq 1 }}{{ true is boolean }}",
           "TrueTrueTrueTrueTrue");
    expect("{{ s.startswith('he') }}|{{ s.split('l') }}|{{ '  x '.strip() }}|{{ 'a</think>b'.split('</think>')[-1] }}",
           "True|['he', '', 'o']|x|b");
    expect("{{ '\\n\\nx\\n'.lstrip('\\n') }}|{{ s[::-1] }}|{{ 'héllo'[1:3] }}|{{ xs[-1] }}|{{ d.get('z', 0) }}",
           "x\n|olleh|él|3|0");
    expect("{{ 'ß'.upper() }}|{{ 'ǅ'.lower() }}|{{ s.title() }}", "SS|ǆ|Hello");
}

/* ---- statements ---- */

static void test_scoping(void **state) {
    expect("{% set x = 1 %}{% for i in xs %}{{ x }}{% set x = 2 %}{{ x }}{% endfor %}{{ x }}", "1212121");
    expect("{% for i in xs %}{% set y = i %}{% endfor %}{{ y is defined }}", "False");
    expect("{% if true %}{% set z = 3 %}{% endif %}{{ z }}", "3");
    expect("{% set ns = namespace(n=0) %}{% for i in xs %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}", "6");
    expect("{% for x in xs if x > 1 %}{{ loop.index }}/{{ loop.length }}{% endfor %}", "1/22/2");
    expect("{% for x in xs %}{% if x == 2 %}{% continue %}{% endif %}{{ x }}{% if x == 3 %}{% break %}{% endif %}{% endfor %}",
           "13");
    expect("{% for k, v in d.items() %}{{ k }}{{ v }}{% endfor %}|{% set a, b = 1, 2 %}{{ a + b }}", "a1b2|3");
    expect("{% set blk %}x{{ 1 }}{% endset %}{{ blk }}|{% with q = 5 %}{{ q }}{% endwith %}{{ q is defined }}",
           "x1|5False");
    expect("{% for x in xs %}{{ loop.previtem }},{{ loop.nextitem }};{% endfor %}", ",2;1,3;2,;");
    expect_error("{% set x = 1 %}{% set x.y = 2 %}", "t.jinja:1:23:", "non-namespace");
}

static void test_macros(void **state) {
    expect("{% macro m(a, b=2) %}{{ a }}{{ b }}{% endmacro %}{{ m(1) }}|{{ m(b=4, a=3) }}", "12|34");
    expect("{% macro m() %}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, k=2) }}", "(1,){'k': 2}");
    expect("{% macro w() %}<{{ caller() }}>{% endmacro %}{% call w() %}in{% endcall %}", "<in>");
    expect("{% macro f() %}{{ z }}{% endmacro %}{% set z = 3 %}{{ f() }}", "3");
    expect("{% macro r(n) %}{% if n %}{{ n }}{{ r(n - 1) }}{% endif %}{% endmacro %}{{ r(3) }}", "321");
    expect_error("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", "t.jinja:1:", "takes not more than 1 argument");
    expect_error("{% macro r() %}{{ r() }}{% endmacro %}{{ r() }}", "t.jinja:1:", "nested more than");
}

static void test_globals(void **state) {
    expect("{{ strftime_now('%Y-%m-%d %A %d %B') }}", "2024-09-05 Thursday 05 September");
    expect("{{ range(2, 8, 3)|list }}|{{ dict(a=1) }}|{{ namespace(a=1) }}", "[2, 5]|{'a': 1}|<Namespace {'a': 1}>");
    expect_error("line\n  {{ raise_exception('Roles must alternate') }}", "t.jinja:2:21:", "Roles must alternate");
    expect_error("{{ range(100001) }}", "t.jinja:1:9:", "MAX_RANGE");
}

/* ---- malformed input: an error with a position, never a crash ---- */

static void test_broken_templates(void **state) {
    static const char *const broken[] = {
        "{{", "{%", "{#", "}}", "{{ }}", "{% %}", "{{ x", "{% if", "{% for %}", "{% for x in %}", "{% for x xs %}",
        "{% if x %}{% else %}{% else %}{% endif %}", "{% endfor %}", "{% macro %}", "{% macro m( %}", "{% set %}",
        "{% set x %}", "{{ x[ }}", "{{ x[1:2:3:4] }}", "{{ x.( }}", "{{ x| }}", "{{ x is }}", "{{ 'a }}", "{{ \"a }}",
        "{{ 1 +* 2 }}", "{{ ((((( }}", "{{ ] }}", "{{ } }}", "{% call %}{% endcall %}", "{% call x %}{% endcall %}",
        "{% filter %}{% endfilter %}", "{% with %}", "{% with x %}{% endwith %}", "{{ x(,) }}", "{{ x(**a, b) }}",
        "{{ x(*a, *b) }}", "{{ {1: } }}", "{{ {1 2} }}", "{{ [1 2] }}", "{{ 1 if }}", "{{ not }}", "{{ - }}",
        "{% continue %}", "{% raw %}{% endraw", "{{ '\\u12' }}", "{{ '\\U110000000' }}", "{{ 0x }}", "{{ 1e }}",
        "{{ x.1.2.3 }}", "{% if true %}{% endfor %}", "{%- -%}", "{{- -}}", "{#-", "{% set x = %}", "{% elif %}",
        "{{ a is not }}", "{{ x|f( }}", "{% for a, in xs %}{% endfor %}", "{% for 1 in xs %}{% endfor %}",
        "{% set 1 = 2 %}", "{% set a.b.c = 1 %}", "{{ \x01 }}", "{{ x }}}}", "{{{{ x }}", "{%%}", "{{}}",
    };
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        tn_clear_error();
        char *out = render(broken[i]);
        if (out) {
            free(out); /* some are valid jinja2 ("{{ x }}}}" prints "}}"); none may crash */
            continue;
        }
        assert_contains(tn_error(), "t.jinja:1:");
    }
    /* deep nesting is refused, not a stack overflow */
    char deep[4096];
    size_t k = 0;
    k += (size_t)snprintf(deep, sizeof deep, "{{ ");
    for (int i = 0; i < 1000; i++) deep[k++] = '(';
    deep[k] = 0;
    strcat(deep, "1 }}");
    expect_error(deep, "t.jinja:1:", "nested too deeply");
    char *ifs = malloc(40000);
    assert_non_null(ifs);
    ifs[0] = 0;
    for (int i = 0; i < 1000; i++) strcat(ifs, "{% if true %}");
    expect_error(ifs, "t.jinja:1:", "nested too deeply");
    free(ifs);
}

/* ---- JSON input ---- */

static void test_json_input(void **state) {
    tt_arena a = {0};
    tv v;
    const char *j = "{\"i\": 1, \"f\": 1.0, \"e\": 1e2, \"k\": 1, \"k\": 2, \"s\": \"\\u00e9\\ud83d\\ude00\", \"n\": null}";
    assert_int_equal(tt_json_parse(&a, j, strlen(j), "x.json", &v), 0);
    assert_int_equal(v.type, TV_DICT);
    assert_int_equal(v.d->n, 6); /* the repeated key keeps its place and its last value */
    assert_int_equal(v.d->v[0].type, TV_INT);
    assert_int_equal(v.d->v[1].type, TV_FLOAT);
    assert_int_equal(v.d->v[2].type, TV_FLOAT);
    assert_int_equal(v.d->v[3].i, 2);
    assert_string_equal(v.d->v[4].s->s, "é😀");
    assert_int_equal(v.d->v[4].s->ncp, 2);
    assert_int_equal(tt_json_parse(&a, "[1,\n 2,,]", 9, "x.json", &v), -1);
    assert_contains(tn_error(), "x.json:2:4:");
    assert_int_equal(tt_json_parse(&a, "\"\\ud800\"", 8, "x.json", &v), -1);
    assert_contains(tn_error(), "lone surrogate");
    assert_int_equal(tt_json_parse(&a, "\"\xc3\x28\"", 4, "x.json", &v), -1);
    assert_contains(tn_error(), "invalid UTF-8");
    assert_int_equal(tt_json_parse(&a, "99999999999999999999", 20, "x.json", &v), -1);
    assert_int_equal(tt_json_parse(&a, "[1] x", 5, "x.json", &v), -1);
    assert_contains(tn_error(), "extra data");
    tt_arena_free(&a);
}

/* ---- a model folder ---- */

static char dir[64];

static void write_file(const char *name, const char *text) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static char *apply(const char *json, int gen) {
    tn_chat_template *ct = tn_chat_template_load(dir);
    if (!ct) return NULL;
    tn_chat_request rq = {json, strlen(json), "in.json", gen, NULL, NULL, 0};
    size_t n;
    char *out = tn_chat_template_apply(ct, &rq, &n);
    tn_chat_template_free(ct);
    return out;
}

static void test_chat_template_folder(void **state) {
    snprintf(dir, sizeof dir, "/tmp/tune_tpl_XXXXXX");
    assert_non_null(mkdtemp(dir));
    const char *msgs = "[{\"role\": \"user\", \"content\": \"hi\"}]";
    /* no template */
    write_file("tokenizer_config.json", "{\"bos_token\": \"<s>\"}");
    tn_clear_error();
    assert_null(apply(msgs, 0));
    assert_contains(tn_error(), "no chat template");
    /* a string template; tokens as strings and AddedToken objects; tools default to None */
    write_file("tokenizer_config.json",
               "{\"bos_token\": {\"content\": \"<s>\", \"lstrip\": false}, \"eos_token\": \"</s>\", \"pad_token\": null,"
               " \"chat_template\": \"{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}{{ eos_token }}"
               "{{ pad_token is defined }}{{ tools is none }}{{ add_generation_prompt }}\"}");
    char *out = apply(msgs, 1);
    assert_non_null(out);
    assert_string_equal(out, "<s>hi</s>FalseTrueTrue");
    free(out);
    /* a list: tool_use when tools are given, default otherwise */
    write_file("tokenizer_config.json",
               "{\"chat_template\": [{\"name\": \"default\", \"template\": \"D{{ messages|length }}\"},"
               " {\"name\": \"tool_use\", \"template\": \"T{{ tools|length }}\"}]}");
    out = apply(msgs, 0);
    assert_string_equal(out, "D1");
    free(out);
    out = apply("{\"messages\": [], \"tools\": [{\"a\": 1}, {}]}", 0);
    assert_string_equal(out, "T2");
    free(out);
    out = apply("{\"messages\": [], \"tools\": null}", 0);
    assert_string_equal(out, "D0");
    free(out);
    /* a broken named template is reported only when used */
    write_file("tokenizer_config.json",
               "{\"chat_template\": [{\"name\": \"default\", \"template\": \"ok\"},"
               " {\"name\": \"tool_use\", \"template\": \"{% if %}\"}]}");
    out = apply(msgs, 0);
    assert_string_equal(out, "ok");
    free(out);
    tn_clear_error();
    assert_null(apply("{\"messages\": [], \"tools\": []}", 0));
    assert_contains(tn_error(), "tokenizer_config.json[chat_template:tool_use]:1:7:");
    /* chat_template.jinja wins; special_tokens_map.json overrides the config */
    write_file("chat_template.jinja", "J{{ bos_token }}\n");
    write_file("special_tokens_map.json", "{\"bos_token\": {\"content\": \"<B>\"}}");
    out = apply(msgs, 0);
    assert_string_equal(out, "J<B>");
    free(out);
    /* bad input */
    tn_clear_error();
    assert_null(apply("{\"msgs\": []}", 0));
    assert_contains(tn_error(), "in.json: expected a list of messages");
    tn_clear_error();
    assert_null(apply("[{\"role\": ", 0));
    assert_contains(tn_error(), "in.json:1:");
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* The same compiled template and variables render the same text twice. */
static void test_rerender(void **state) {
    const char *src = "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}";
    tn_template *t = tn_template_compile(src, strlen(src), "t");
    tn_template_vars *v = tn_template_vars_new();
    assert_int_equal(tn_template_vars_set_json(v, "messages", "[1, 2]", 6, "m"), 0);
    for (int i = 0; i < 3; i++) {
        char *out = tn_template_render(t, v, NULL);
        assert_string_equal(out, "2");
        free(out);
    }
    tn_template_vars_free(v);
    tn_template_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lexer_tokens),        cmocka_unit_test(test_whitespace_control),
        cmocka_unit_test(test_string_escapes),      cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_unsupported),         cmocka_unit_test(test_python_values),
        cmocka_unit_test(test_tojson),              cmocka_unit_test(test_undefined),
        cmocka_unit_test(test_filters),             cmocka_unit_test(test_tests_and_methods),
        cmocka_unit_test(test_scoping),             cmocka_unit_test(test_macros),
        cmocka_unit_test(test_globals),             cmocka_unit_test(test_broken_templates),
        cmocka_unit_test(test_json_input),          cmocka_unit_test(test_chat_template_folder),
        cmocka_unit_test(test_rerender),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
