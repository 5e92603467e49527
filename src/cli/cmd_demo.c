/* cmd_demo.c - `tune demo`: the pipeline on the embedded tiny model, with
 * every output's location printed. The stages run are those this build has
 * (today: init and check; train, fuse, export and generate join as they land). */
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "util/atomic_file.h"
#include "util/embedded.h"
#include "util/error.h"
#include "util/platform.h"

static const char help[] =
    "usage: tune demo [--out DIR]\n\n"
    "Runs the pipeline on the embedded tiny model (a 4-layer Llama-shaped model of 0.9 M\n"
    "parameters whose config is compiled into tune): writes its randomly initialised\n"
    "checkpoint, checks it, then prints the compatibility table of every preset against a\n"
    "16 GiB budget. Outputs go to DIR (default ./tune-demo).\n";

static int run(const char *title, int (*cmd)(int, char **), int argc, char **argv) {
    fprintf(stderr, "\n== %s: tune", title);
    for (int i = 0; i < argc; i++) fprintf(stderr, " %s", argv[i]);
    fprintf(stderr, "\n");
    fflush(stdout);
    int rc = cmd(argc, argv);
    fflush(stdout);
    if (rc != 0) fprintf(stderr, "tune demo: stage '%s' failed (exit %d)\n", title, rc);
    return rc;
}

int cmd_demo(int argc, char **argv) {
    const char *out = "tune-demo", *v;
    tn_args a = tn_args_start(argc, argv, "demo");
    while (tn_args_next(&a)) {
        if (tn_arg_flag(&a, "--help") || tn_arg_flag(&a, "-h")) {
            fputs(help, stdout);
            return TN_EXIT_OK;
        } else if (tn_arg_value(&a, "--out", &v)) {
            out = v;
        } else {
            tn_arg_unknown(&a);
        }
    }
    if (a.failed) return fprintf(stderr, "tune: %s\n", tn_error()), TN_EXIT_USAGE;
    const tn_embedded_file *cfg = NULL;
    for (int i = 0; i < tn_demo_files_count; i++)
        if (!strcmp(tn_demo_files[i].name, "tiny-config.json")) cfg = &tn_demo_files[i];
    if (!cfg) return fprintf(stderr, "tune demo: the embedded tiny model is missing from this build\n"), TN_EXIT_FAILED;
    char config_path[4200], model_dir[4200];
    snprintf(config_path, sizeof config_path, "%s/tiny-config.json", out);
    snprintf(model_dir, sizeof model_dir, "%s/model", out);
    if (tn_make_dirs(out) || tn_write_file_atomic(config_path, cfg->data, cfg->size))
        return fprintf(stderr, "tune: %s\n", tn_error()), TN_EXIT_FAILED;

    char *init_argv[] = {"init", config_path, "--out", model_dir, "--seed", "0"};
    char *check_argv[] = {"check", model_dir, "--max-seq-length", "512", "--budget", "16G"};
    char *all_argv[] = {"check", "--all", "--budget", "16G"};
    if (run("init", cmd_init, 6, init_argv)) return TN_EXIT_FAILED;
    if (run("check", cmd_check, 6, check_argv)) return TN_EXIT_FAILED;
    if (run("check every preset", cmd_check, 4, all_argv)) return TN_EXIT_FAILED;
    fprintf(stderr, "\ntune demo: done.\n  tiny model config: %s\n  tiny checkpoint:   %s/ (config.json, model.safetensors)\n", config_path,
            model_dir);
    return TN_EXIT_OK;
}
