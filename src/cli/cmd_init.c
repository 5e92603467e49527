/* cmd_init.c - `tune init PRESET|CONFIG --out DIR`: a randomly initialised
 * checkpoint of any supported architecture and size, written the way
 * transformers initialises one (normal(0, initializer_range) for matrices,
 * ones for norms, zeros for biases; Gemma 2's (1 + w) norms zero; Mamba2's
 * A_log = log(1..H), D = 1, dt_bias = 1). For tests and benchmarks that need
 * more than a committed fixture, and for training small models from scratch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "io/json.h"
#include "io/safetensors_write.h"
#include "model/presets.h"
#include "model/source.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/platform.h"
#include "util/rng.h"

static const char help[] =
    "usage: tune init PRESET|CONFIG.json|MODEL_DIR --out DIR [--seed S] [--dtype bf16|f16|f32]\n\n"
    "Writes a randomly initialised checkpoint (config.json and safetensors, sharded past 5 GB)\n"
    "with the architecture of a preset, a config.json, or a model folder's config.\n"
    "Weights are drawn as transformers initialises them, from a seeded generator.\n\n"
    "options:\n"
    "  --out DIR        output folder (created)\n"
    "  --seed S         generator seed (default 0)\n"
    "  --dtype T        stored dtype (default: the config's torch_dtype)\n";

typedef enum { INIT_NORMAL, INIT_ONES, INIT_ZEROS, INIT_A_LOG, INIT_UNIFORM } init_kind;

typedef struct {
    tn_tensor_desc *desc;
    init_kind *kind;
    double *scale;
    char **names;
    int n, cap;
    uint64_t seed;
} init_ctx;

static int add_tensor(init_ctx *c, const char *name, tn_dtype dt, int n_dims, const int64_t *shape, init_kind k, double scale) {
    if (c->n == c->cap) {
        int nc = c->cap ? c->cap * 2 : 256;
        tn_tensor_desc *d = realloc(c->desc, (size_t)nc * sizeof *d);
        if (d) c->desc = d;
        init_kind *kk = realloc(c->kind, (size_t)nc * sizeof *kk);
        if (kk) c->kind = kk;
        double *s = realloc(c->scale, (size_t)nc * sizeof *s);
        if (s) c->scale = s;
        char **nm = realloc(c->names, (size_t)nc * sizeof *nm);
        if (nm) c->names = nm;
        if (!d || !kk || !s || !nm) return tn_fail("out of memory");
        c->cap = nc;
    }
    c->names[c->n] = tn_strdup(name);
    if (!c->names[c->n]) return -1;
    tn_tensor_desc *t = &c->desc[c->n];
    memset(t, 0, sizeof *t);
    t->name = c->names[c->n];
    t->dtype = dt;
    t->n_dims = n_dims;
    memcpy(t->shape, shape, (size_t)n_dims * sizeof *shape);
    c->kind[c->n] = k;
    c->scale[c->n] = scale;
    c->n++;
    return 0;
}

static void store(void *buf, tn_dtype dt, uint64_t i, float v) {
    if (dt == TN_DTYPE_F32) ((float *)buf)[i] = v;
    else if (dt == TN_DTYPE_BF16) ((uint16_t *)buf)[i] = tn_f32_to_bf16(v);
    else ((uint16_t *)buf)[i] = tn_f32_to_f16(v);
}

/* Values come in chunks of 2^20 elements, each from its own stream, so the
 * result is the same whatever the thread count. */
static int fill(void *vctx, int i, void *buf, uint64_t n_bytes) {
    init_ctx *c = vctx;
    const tn_tensor_desc *t = &c->desc[i];
    uint64_t n = n_bytes / tn_dtype_size(t->dtype);
    init_kind k = c->kind[i];
    double scale = c->scale[i];
    uint64_t stream = tn_hash_string(t->name);
    const uint64_t chunk = 1u << 20;
    int64_t chunks = (int64_t)((n + chunk - 1) / chunk);
#pragma omp parallel for schedule(dynamic)
    for (int64_t ch = 0; ch < chunks; ch++) {
        tn_rng r;
        tn_rng_seed(&r, c->seed, stream + (uint64_t)ch * 0x9e3779b97f4a7c15ull);
        uint64_t end = ((uint64_t)ch + 1) * chunk < n ? ((uint64_t)ch + 1) * chunk : n;
        for (uint64_t e = (uint64_t)ch * chunk; e < end; e++) {
            float v;
            switch (k) {
            case INIT_NORMAL: v = (float)(scale * tn_rng_normal(&r)); break;
            case INIT_ONES: v = 1.0f; break;
            case INIT_ZEROS: v = 0.0f; break;
            case INIT_A_LOG: v = (float)log((double)(e + 1)); break;
            default: v = (float)(scale * (2.0 * tn_rng_uniform(&r) - 1.0)); break;
            }
            store(buf, t->dtype, e, v);
        }
    }
    return 0;
}

/* How a tensor of the family table is initialised, by its name. */
static init_kind kind_for(const tn_spec *spec, const tn_tensor_rule *r, double *scale, double init_range) {
    const char *n = r->name;
    size_t len = strlen(n);
    *scale = init_range;
    if (strstr(n, "A_log")) return INIT_A_LOG;
    if (len >= 2 && !strcmp(n + len - 2, ".D")) return INIT_ONES;
    if (strstr(n, "dt_bias")) return INIT_ONES;
    if (strstr(n, "conv1d")) {
        *scale = 1.0 / sqrt((double)spec->mamba_kernel);
        return INIT_UNIFORM;
    }
    if (len > 5 && !strcmp(n + len - 5, ".bias")) return INIT_ZEROS;
    if (r->n_dims == 1) return spec->family->norm == TN_NORM_RMS_ONE_PLUS ? INIT_ZEROS : INIT_ONES;
    return INIT_NORMAL;
}

int cmd_init(int argc, char **argv) {
    const char *model = NULL, *out = NULL, *v;
    int64_t seed = 0;
    int dtype = -1;
    tn_args a = tn_args_start(argc, argv, "init");
    while (tn_args_next(&a)) {
        if (tn_arg_flag(&a, "--help") || tn_arg_flag(&a, "-h")) {
            fputs(help, stdout);
            return TN_EXIT_OK;
        } else if (tn_arg_value(&a, "--out", &v)) {
            out = v;
        } else if (tn_arg_value(&a, "--seed", &v)) {
            if (!v || tn_arg_int("--seed", v, 0, INT64_MAX, &seed)) a.failed = 1;
        } else if (tn_arg_value(&a, "--dtype", &v)) {
            if (!v) continue;
            dtype = !strcmp(v, "bf16") ? TN_DTYPE_BF16 : !strcmp(v, "f16") ? TN_DTYPE_F16 : !strcmp(v, "f32") ? TN_DTYPE_F32 : -1;
            if (dtype < 0) a.failed = 1, tn_fail("--dtype: expected bf16, f16 or f32, got '%s'", v);
        } else if (tn_arg_value(&a, "--model", &v) || tn_arg_positional(&a, &v)) {
            model = v;
        } else {
            tn_arg_unknown(&a);
        }
    }
    if (a.failed) return fprintf(stderr, "tune: %s\n", tn_error()), TN_EXIT_USAGE;
    if (!model || !out) return fprintf(stderr, "tune init: needs a preset or config and --out DIR\n%s", help), TN_EXIT_USAGE;

    tn_model_source src;
    if (tn_model_source_open(model, &src) != 0) return fprintf(stderr, "tune: %s\n", tn_error()), TN_EXIT_USAGE;
    tn_spec *spec = &src.spec;
    if (spec->quant_bits)
        return fprintf(stderr, "tune: %s: config.json describes a quantized checkpoint; init writes float weights\n", model), TN_EXIT_USAGE;
    /* The config text is kept as it is: it carries keys tune does not read. */
    char *config_text = NULL;
    if (src.kind == TN_SOURCE_PRESET) {
        config_text = tn_strdup(tn_preset_config(model));
    } else {
        char path[4200];
        snprintf(path, sizeof path, src.kind == TN_SOURCE_FOLDER ? "%s/config.json" : "%s", src.path);
        config_text = tn_read_file(path, 16u << 20, NULL);
    }
    if (!config_text) return fprintf(stderr, "tune: %s\n", tn_error()), TN_EXIT_USAGE;
    double init_range = 0.02;
    cJSON *cfg = cJSON_Parse(config_text);
    if (cfg) {
        tn_json_opt_num(cfg, "initializer_range", "config", &init_range);
        cJSON_Delete(cfg);
    }
    tn_dtype dt = dtype >= 0 ? (tn_dtype)dtype : spec->dtype;

    init_ctx c;
    memset(&c, 0, sizeof c);
    c.seed = (uint64_t)seed;
    int rc = 0;
    char name[512];
    int64_t shape[3];
    for (const tn_tensor_rule *r = spec->family->global_rules; r->name && !rc; r++) {
        if (!tn_rule_applies(spec, r, -1)) continue;
        for (int d = 0; d < r->n_dims; d++) shape[d] = tn_spec_dim(spec, r->shape[d]);
        double scale;
        init_kind k = kind_for(spec, r, &scale, init_range);
        rc = add_tensor(&c, r->name, dt, r->n_dims, shape, k, scale);
    }
    for (int l = 0; l < spec->n_layers && !rc; l++)
        for (const tn_tensor_rule *r = spec->family->layer_rules; r->name && !rc; r++) {
            if (!tn_rule_applies(spec, r, l)) continue;
            snprintf(name, sizeof name, r->name, l);
            for (int d = 0; d < r->n_dims; d++) shape[d] = tn_spec_dim(spec, r->shape[d]);
            double scale;
            init_kind k = kind_for(spec, r, &scale, init_range);
            /* Mamba2 parameters stay fp32 in transformers' checkpoints. */
            tn_dtype tdt = (k == INIT_A_LOG || strstr(r->name, ".D") || strstr(r->name, "dt_bias")) ? TN_DTYPE_F32 : dt;
            rc = add_tensor(&c, name, tdt, r->n_dims, shape, k, scale);
        }
    if (!rc) rc = tn_make_dirs(out);
    if (!rc) {
        char path[4200];
        snprintf(path, sizeof path, "%s/config.json", out);
        rc = tn_write_file_atomic(path, config_text, strlen(config_text));
    }
    double t0 = tn_seconds();
    if (!rc) rc = tn_safetensors_write(out, "model", c.desc, c.n, 5000000000ull, "{\"format\":\"pt\"}", fill, &c);
    uint64_t bytes = 0;
    for (int i = 0; i < c.n; i++) {
        uint64_t nb = tn_dtype_size(c.desc[i].dtype);
        for (int d = 0; d < c.desc[i].n_dims; d++) nb *= (uint64_t)c.desc[i].shape[d];
        bytes += nb;
        free(c.names[i]);
    }
    free(c.desc), free(c.kind), free(c.scale), free(c.names), free(config_text);
    if (rc) return fprintf(stderr, "tune: %s\n", tn_error()), TN_EXIT_FAILED;
    fprintf(stderr, "tune init: %s: %d tensors, %.2f GiB (%s), seed %lld, %.1f s\n", out, c.n, bytes / 1073741824.0, tn_dtype_name(dt),
            (long long)seed, tn_seconds() - t0);
    return TN_EXIT_OK;
}
