#include "cli/args.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

tn_args tn_args_start(int argc, char **argv, const char *cmd) {
    tn_args a = {argc, argv, 0, cmd, 0, 1};
    return a;
}

int tn_args_next(tn_args *a) {
    if (a->failed) return 0;
    a->i++;
    a->consumed = 0;
    return a->i < a->argc;
}

int tn_arg_value(tn_args *a, const char *name, const char **value) {
    const char *arg = a->argv[a->i];
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0) return 0;
    if (arg[n] == '=') {
        *value = arg + n + 1;
        return 1;
    }
    if (arg[n] != 0) return 0;
    if (a->i + 1 >= a->argc) {
        tn_fail("tune %s: option %s needs a value", a->cmd, name);
        a->failed = 1;
        *value = NULL;
        return 1;
    }
    *value = a->argv[++a->i];
    return 1;
}

int tn_arg_flag(tn_args *a, const char *name) { return strcmp(a->argv[a->i], name) == 0; }

int tn_arg_positional(tn_args *a, const char **value) {
    const char *arg = a->argv[a->i];
    if (arg[0] == '-' && arg[1] != 0) return 0;
    *value = arg;
    return 1;
}

int tn_arg_unknown(tn_args *a) {
    tn_fail("tune %s: unknown option '%s' (see tune %s --help)", a->cmd, a->argv[a->i], a->cmd);
    a->failed = 1;
    return 0;
}

int tn_arg_int(const char *opt, const char *text, int64_t lo, int64_t hi, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (end == text || *end || errno || v < lo || v > hi)
        return tn_fail("%s: expected an integer in [%lld, %lld], got '%s'", opt, (long long)lo,
                       (long long)hi, text);
    *out = v;
    return 0;
}

int tn_arg_double(const char *opt, const char *text, double *out) {
    char *end;
    double v = strtod(text, &end);
    if (end == text || *end || !isfinite(v))
        return tn_fail("%s: expected a number, got '%s'", opt, text);
    *out = v;
    return 0;
}
