/* args.h - the command line, read one argument at a time.
 *
 *   tn_args a = tn_args_start(argc, argv, "check");
 *   while (tn_args_next(&a)) {
 *       if (tn_arg_value(&a, "--rank", &v)) ...        // --rank 16 | --rank=16
 *       else if (tn_arg_flag(&a, "--json")) ...
 *       else if (tn_arg_positional(&a, &p)) ...
 *       else return tn_arg_unknown(&a);
 *   }
 *   if (a.failed) return TN_EXIT_USAGE;
 *
 * Errors (a missing value, an unknown option) set the message and a.failed. */
#ifndef TUNE_ARGS_H
#define TUNE_ARGS_H

#include <stdint.h>

typedef struct {
    int argc;
    char **argv;
    int i;           /* index of the current argument */
    const char *cmd; /* "check", for messages */
    int failed;
    int consumed;
} tn_args;

tn_args tn_args_start(int argc, char **argv, const char *cmd);
int tn_args_next(tn_args *a);
int tn_arg_value(tn_args *a, const char *name, const char **value);
int tn_arg_flag(tn_args *a, const char *name);
int tn_arg_positional(tn_args *a, const char **value);
int tn_arg_unknown(tn_args *a);

/* Value conversions; each fails with the option's name on bad text. */
int tn_arg_int(const char *opt, const char *text, int64_t lo, int64_t hi, int64_t *out);
int tn_arg_double(const char *opt, const char *text, double *out);

#endif
