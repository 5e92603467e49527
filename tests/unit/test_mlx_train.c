/* test_mlx_train.c - LoRA on an MLX affine 4-bit checkpoint (mlx-community's
 * layout) as a frozen quantized base. The checkpoint is made here from the
 * llama fixture: each Linear weight and the embedding quantized per group of
 * 64 (scale = (max-min)/15, bias = min, q = round((w-bias)/scale)), eight
 * values a U32 word, lowest bits first, and config.json's "quantization"
 * block. Beside it the same weights dequantized, as a plain F32 folder: a
 * LoRA step on the quantized base equals the step on that folder.
 *
 * Granite 4.0-H too, its conv1d in MLX's layout. With TUNE_MLX_OUT=DIR set,
 * only writes the checkpoint of TUNE_MLX_SRC (default the llama fixture) to
 * DIR (for tests/e2e/train_mlx.sh). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/dtype.h"
#include "io/safetensors_write.h"
#include "model/spec.h"
#include "plan/plan.h"
#include "train/adapter.h"
#include "train/model.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/platform.h"

enum { GROUP = 64, BITS = 4 };

/* How make_mlx writes the checkpoint: Linears quantized at `bits` (0 = not)
 * in groups of `group`; mlxlm: Granite 4.0-H's experts under mlx-lm's names
 * (granitemoehybrid.py sanitize: input_linear split into
 * switch_mlp.gate_proj / up_proj, output_linear as switch_mlp.down_proj),
 * quantized as stacked [E, out, in] like mlx-lm's QuantizedSwitchLinear, the
 * router at 8 bits in groups of 64 (its quant_predicate); without experts
 * (dense) the shared MLP under mlx-lm's dense names (input_linear split into
 * mlp.gate_proj / up_proj, output_linear as mlp.down_proj); bf16: the
 * experts (dense: the mlp) stored BF16. */
typedef struct {
    int bits, group, mlxlm, bf16;
} mlx_opts;
static const mlx_opts plain_opts = {BITS, GROUP, 0, 0};

typedef struct {
    tn_tensor_desc d[256];
    void *data[256];
    uint64_t bytes[256];
    int n;
} out_set;

static int fill(void *ctx, int i, void *buf, uint64_t n_bytes) {
    const out_set *o = ctx;
    memcpy(buf, o->data[i], n_bytes);
    return 0;
}

static void add(out_set *o, const char *name, tn_dtype dt, int n_dims, const int64_t *shape, void *data, uint64_t bytes) {
    tn_tensor_desc *d = &o->d[o->n];
    d->name = tn_strdup(name);
    d->dtype = dt;
    d->n_dims = n_dims;
    for (int k = 0; k < n_dims; k++) d->shape[k] = shape[k];
    o->data[o->n] = data;
    o->bytes[o->n++] = bytes;
}

static void free_set(out_set *o) {
    for (int i = 0; i < o->n; i++) free((void *)o->d[i].name), free(o->data[i]);
}

static int quantized_name(const char *n) {
    static const char *const ends[] = {"_proj.weight", "_linear.weight", "embed_tokens.weight", "lm_head.weight", NULL};
    size_t len = strlen(n);
    for (int i = 0; ends[i]; i++)
        if (len >= strlen(ends[i]) && !strcmp(n + len - strlen(ends[i]), ends[i])) return 1;
    return 0;
}

/* Copies config.json (with or without the quantization block) and the
 * tokenizer files. */
static void copy_side_files(const char *src_dir, const char *dir, const mlx_opts *o, int n_layers) {
    const int quant = o && o->bits;
    static const char *const files[] = {"config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json", NULL};
    for (int i = 0; files[i]; i++) {
        char src[512], dst[512];
        snprintf(src, sizeof src, "%s/%s", src_dir, files[i]);
        snprintf(dst, sizeof dst, "%s/%s", dir, files[i]);
        size_t n = 0;
        char *text = tn_read_file(src, 1u << 26, &n);
        assert_non_null(text);
        if (i == 0 && quant) {
            char *brace = strchr(text, '{');
            assert_non_null(brace);
            size_t cap = n + 256 + (size_t)n_layers * 128;
            char *out = malloc(cap), extra[4096] = "";
            /* mlx-lm writes each layer quantized otherwise into the block */
            for (int l = 0; o->mlxlm && l < n_layers; l++)
                snprintf(extra + strlen(extra), sizeof extra - strlen(extra),
                         ", \"model.layers.%d.block_sparse_moe.router.layer\": {\"group_size\": 64, \"bits\": 8}", l);
            int head = (int)(brace - text) + 1;
            int k = snprintf(out, cap, "%.*s\n  \"quantization\": {\"group_size\": %d, \"bits\": %d%s},%s", head, text, o->group, o->bits, extra,
                             brace + 1);
            assert_int_equal(tn_write_file_atomic(dst, out, (size_t)k), 0);
            free(out);
        } else {
            assert_int_equal(tn_write_file_atomic(dst, text, n), 0);
        }
        free(text);
    }
}

/* Stores w (leading axes flattened into rows of `cols`) as `name`:
 * quantized at `bits` in groups of `group` (MLX affine: scale =
 * (max-min)/(2^bits-1), bias = min, q = round((w-bias)/scale), 32/bits
 * values a U32 word, lowest bits first) when bits > 0, else BF16 when bf16,
 * else F32; what it reads back as goes to plainw. Returns 1 when quantized. */
static int put(out_set *q, const char *name, int nd, const int64_t *shape, const float *w, int bits, int group, int bf16, float *plainw) {
    int64_t n = 1;
    for (int k = 0; k < nd; k++) n *= shape[k];
    const int64_t cols = nd ? shape[nd - 1] : 1, rows = n / cols;
    if (bits && nd >= 2 && cols % group == 0) {
        const int64_t ng = cols / group, per = 32 / bits, levels = (1 << bits) - 1;
        uint32_t *packed = calloc((size_t)(n / per), 4);
        float *sc = malloc((size_t)(rows * ng) * 4), *bi = malloc((size_t)(rows * ng) * 4);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t g = 0; g < ng; g++) {
                const float *x = w + r * cols + g * group;
                float lo = x[0], hi = x[0];
                for (int j = 1; j < group; j++) lo = fminf(lo, x[j]), hi = fmaxf(hi, x[j]);
                float scale = (hi - lo) / (float)levels, bias = lo;
                sc[r * ng + g] = scale, bi[r * ng + g] = bias;
                for (int j = 0; j < group; j++) {
                    float v = scale > 0 ? roundf((x[j] - bias) / scale) : 0.0f;
                    uint32_t qv = v < 0 ? 0 : v > (float)levels ? (uint32_t)levels : (uint32_t)v;
                    int64_t c = g * group + j;
                    packed[(r * cols + c) / per] |= qv << (bits * (c % per));
                    plainw[r * cols + c] = scale * (float)qv + bias;
                }
            }
        char base[256], aux[300];
        snprintf(base, sizeof base, "%.*s", (int)(strlen(name) - strlen(".weight")), name);
        int64_t pshape[3], gshape[3];
        for (int k = 0; k < nd; k++) pshape[k] = gshape[k] = shape[k];
        pshape[nd - 1] = cols / per, gshape[nd - 1] = ng;
        add(q, name, TN_DTYPE_U32, nd, pshape, packed, (uint64_t)(n / per) * 4);
        snprintf(aux, sizeof aux, "%s.scales", base);
        add(q, aux, TN_DTYPE_F32, nd, gshape, sc, (uint64_t)(rows * ng) * 4);
        snprintf(aux, sizeof aux, "%s.biases", base);
        add(q, aux, TN_DTYPE_F32, nd, gshape, bi, (uint64_t)(rows * ng) * 4);
        return 1;
    }
    if (bf16) {
        uint16_t *h = malloc((size_t)n * 2);
        for (int64_t i = 0; i < n; i++) h[i] = tn_f32_to_bf16(w[i]), plainw[i] = tn_bf16_to_f32(h[i]);
        add(q, name, TN_DTYPE_BF16, nd, shape, h, (uint64_t)n * 2);
        return 0;
    }
    float *copy = malloc((size_t)n * 4);
    memcpy(copy, w, (size_t)n * 4);
    memcpy(plainw, w, (size_t)n * 4);
    add(q, name, TN_DTYPE_F32, nd, shape, copy, (uint64_t)n * 4);
    return 0;
}

/* "<prefix><from>" as "<prefix><to>". */
static void renamed(const char *name, const char *from, const char *to, char *out, size_t cap) {
    const char *p = strstr(name, from);
    snprintf(out, cap, "%.*s%s", (int)(p - name), name, to);
}

/* Writes fixture `src`'s MLX checkpoint to `mlx` and, when `plain` is not
 * NULL, its dequantized weights as F32 to `plain`. The Mamba conv1d goes
 * into MLX's layout, [C, K, 1] (Hugging Face's is [C, 1, K]). */
static void make_mlx(const char *src, const char *mlx, const char *plain, const mlx_opts *o) {
    tn_safetensors st;
    if (tn_safetensors_open(src, &st) != 0) fail_msg("%s", tn_error());
    out_set *q = calloc(1, sizeof *q), *f = calloc(1, sizeof *f);
    int n_quant = 0, n_layers = 0, moe = 0;
    for (int i = 0; i < st.n_tensors; i++) moe |= strstr(st.tensors[i].name, "block_sparse_moe.") != NULL;
    for (int i = 0; i < st.n_tensors; i++) {
        const tn_tensor_info *t = &st.tensors[i];
        assert_int_equal(t->dtype, TN_DTYPE_F32);
        const float *w = tn_safetensors_data(&st, t);
        float *plainw = malloc(t->n_bytes);
        int64_t shape[TN_MAX_DIMS];
        memcpy(shape, t->shape, sizeof shape);
        int l;
        if (sscanf(t->name, "model.layers.%d.", &l) == 1 && l + 1 > n_layers) n_layers = l + 1;
        char alt[300];
        if (o->mlxlm && strstr(t->name, "block_sparse_moe.input_linear.weight")) {
            /* each expert's [gate; up] rows into two stacked [E, FE, H] */
            const int64_t E = shape[0], FE = shape[1] / 2, H = shape[2], half = FE * H;
            float *part = malloc((size_t)(E * half) * 4), *back = malloc((size_t)(E * half) * 4);
            for (int p = 0; p < 2; p++) {
                for (int64_t e = 0; e < E; e++) memcpy(part + e * half, w + (2 * e + p) * half, (size_t)half * 4);
                int64_t ps[3] = {E, FE, H};
                renamed(t->name, "input_linear.weight", p ? "switch_mlp.up_proj.weight" : "switch_mlp.gate_proj.weight", alt, sizeof alt);
                n_quant += put(q, alt, 3, ps, part, o->bits, o->group, o->bf16, back);
                for (int64_t e = 0; e < E; e++) memcpy(plainw + (2 * e + p) * half, back + e * half, (size_t)half * 4);
            }
            free(part), free(back);
        } else if (o->mlxlm && strstr(t->name, "block_sparse_moe.output_linear.weight")) {
            renamed(t->name, "output_linear.weight", "switch_mlp.down_proj.weight", alt, sizeof alt);
            n_quant += put(q, alt, 3, shape, w, o->bits, o->group, o->bf16, plainw);
        } else if (o->mlxlm && !moe && strstr(t->name, "shared_mlp.input_linear.weight")) {
            /* dense: [gate; up] rows into mlp.gate_proj and mlp.up_proj [F, H] */
            const int64_t half = shape[0] / 2 * shape[1];
            for (int p = 0; p < 2; p++) {
                int64_t ps[2] = {shape[0] / 2, shape[1]};
                renamed(t->name, "shared_mlp.input_linear.weight", p ? "mlp.up_proj.weight" : "mlp.gate_proj.weight", alt, sizeof alt);
                n_quant += put(q, alt, 2, ps, w + p * half, o->bits, o->group, o->bf16, plainw + p * half);
            }
        } else if (o->mlxlm && !moe && strstr(t->name, "shared_mlp.output_linear.weight")) {
            renamed(t->name, "shared_mlp.output_linear.weight", "mlp.down_proj.weight", alt, sizeof alt);
            n_quant += put(q, alt, 2, shape, w, o->bits, o->group, o->bf16, plainw);
        } else if (o->mlxlm && strstr(t->name, "router.layer.weight")) {
            n_quant += put(q, t->name, 2, shape, w, o->bits ? 8 : 0, 64, 0, plainw);
        } else if (t->n_dims == 2 && quantized_name(t->name)) {
            n_quant += put(q, t->name, 2, shape, w, o->bits, o->group, 0, plainw);
        } else {
            if (strstr(t->name, "conv1d.weight") && t->n_dims == 3 && shape[1] == 1) shape[1] = shape[2], shape[2] = 1;
            put(q, t->name, t->n_dims, shape, w, 0, 0, 0, plainw);
        }
        add(f, t->name, TN_DTYPE_F32, t->n_dims, t->shape, plainw, t->n_bytes);
    }
    if (o->bits) assert_true(n_quant >= 5); /* the Linears of 2+ layers, and the embedding */
    assert_int_equal(tn_make_dirs(mlx), 0);
    assert_int_equal(tn_safetensors_write(mlx, "model", q->d, q->n, 5000000000ull, NULL, fill, q), 0);
    copy_side_files(src, mlx, o, moe ? n_layers : 0);
    if (plain) {
        assert_int_equal(tn_make_dirs(plain), 0);
        assert_int_equal(tn_safetensors_write(plain, "model", f->d, f->n, 5000000000ull, NULL, fill, f), 0);
        copy_side_files(src, plain, NULL, 0);
    }
    free_set(q), free_set(f);
    free(q), free(f);
    tn_safetensors_close(&st);
}

static int32_t *ints(const tn_safetensors *st, const char *name) {
    const tn_tensor_info *t = tn_safetensors_find(st, name);
    int32_t *out = malloc(t->n_elements * sizeof *out);
    for (uint64_t i = 0; i < t->n_elements; i++) {
        int64_t v;
        memcpy(&v, (const char *)tn_safetensors_data(st, t) + 8 * i, 8);
        out[i] = (int32_t)v;
    }
    return out;
}

static double step(tn_model *m, const char *src, const int32_t *ids, const int32_t *labels, float **grads, int64_t *n) {
    tn_lora lora;
    char adapter[256];
    snprintf(adapter, sizeof adapter, "%s/lora/init_adapter", src);
    if (tn_adapter_load(&lora, m, adapter) != 0) fail_msg("%s", tn_error());
    tn_plan_settings ps = {.seq = 16, .batch = 2};
    tn_activations a;
    assert_int_equal(tn_activations_alloc(&a, m, &lora, &ps), 0);
    int64_t c;
    double loss = tn_model_step(m, &lora, &a, ids, labels, 1, 0, &c) / (double)c;
    *n = lora.n_params;
    *grads = malloc((size_t)lora.n_params * sizeof(float));
    memcpy(*grads, lora.grads, (size_t)lora.n_params * sizeof(float));
    tn_activations_free(&a);
    tn_lora_free(&lora);
    return loss;
}

static void step_equals_dequantized(const char *src, const mlx_opts *o) {
    char dir[256], mlx[300], plain[300], cmd[320], path[300];
    snprintf(dir, sizeof dir, "/tmp/tune-mlx-train-%d", (int)getpid());
    snprintf(mlx, sizeof mlx, "%s/mlx", dir);
    snprintf(plain, sizeof plain, "%s/plain", dir);
    make_mlx(src, mlx, plain, o);

    /* The checkpoint matches its config (what `tune check` verifies). */
    tn_spec spec;
    if (tn_spec_load(mlx, &spec) != 0) fail_msg("%s", tn_error());
    assert_int_equal(spec.quant_bits, o->bits);
    if (o->bits) assert_int_equal(spec.quant_group_size, o->group);
    tn_safetensors st;
    assert_int_equal(tn_safetensors_open(mlx, &st), 0);
    if (o->mlxlm && spec.n_experts <= 0) {
        /* mlx-lm's dense names, not Hugging Face's shared_mlp */
        assert_null(tn_safetensors_find(&st, "model.layers.0.shared_mlp.input_linear.weight"));
        assert_null(tn_safetensors_find(&st, "model.layers.0.shared_mlp.output_linear.weight"));
        const tn_tensor_info *g = tn_safetensors_find(&st, "model.layers.0.mlp.gate_proj.weight");
        const tn_tensor_info *u = tn_safetensors_find(&st, "model.layers.0.mlp.up_proj.weight");
        const tn_tensor_info *d = tn_safetensors_find(&st, "model.layers.0.mlp.down_proj.weight");
        assert_non_null(g);
        assert_non_null(u);
        assert_non_null(d);
        assert_int_equal(g->shape[0], spec.shared_intermediate);
        assert_int_equal(d->dtype, o->bits ? TN_DTYPE_U32 : TN_DTYPE_BF16);
    } else if (o->mlxlm) {
        /* mlx-lm's names, not Hugging Face's */
        assert_null(tn_safetensors_find(&st, "model.layers.0.block_sparse_moe.input_linear.weight"));
        const tn_tensor_info *g = tn_safetensors_find(&st, "model.layers.0.block_sparse_moe.switch_mlp.gate_proj.weight");
        const tn_tensor_info *d = tn_safetensors_find(&st, "model.layers.0.block_sparse_moe.switch_mlp.down_proj.weight");
        assert_non_null(g);
        assert_non_null(d);
        assert_int_equal(g->n_dims, 3);
        assert_int_equal(g->dtype, o->bits ? TN_DTYPE_U32 : TN_DTYPE_BF16);
        assert_int_equal(d->dtype, o->bits ? TN_DTYPE_U32 : TN_DTYPE_BF16);
        if (o->bits) assert_int_equal(tn_safetensors_find(&st, "model.layers.0.block_sparse_moe.router.layer.weight")->dtype, TN_DTYPE_U32);
    }
    char report[4096];
    int problems = tn_spec_check_tensors(&spec, &st, report, sizeof report);
    if (problems) fail_msg("%s", report);
    tn_safetensors_close(&st);

    tn_safetensors bt;
    snprintf(path, sizeof path, "%s/lora/batches.safetensors", src);
    if (tn_safetensors_open(path, &bt) != 0) fail_msg("%s", tn_error());
    int32_t *ids = ints(&bt, "input_ids"), *labels = ints(&bt, "labels");
    tn_model q, d;
    if (tn_model_open(mlx, 16, &q) != 0) fail_msg("%s", tn_error());
    if (tn_model_open(plain, 16, &d) != 0) fail_msg("%s", tn_error());
    /* The packed weights stay as they are in the mapping; only the
     * embedding is dequantized whole. */
    if (o->bits) assert_non_null(q.embed_copy);
    if (o->bits) assert_true(q.layer_ws != NULL);
    assert_int_equal(memcmp(q.embed_view, d.embed_view, (size_t)(q.spec.vocab_size * q.spec.hidden) * sizeof(float)), 0);
    /* QLoRA on top is refused (full fine-tuning too, below). */
    if (!q.spec.family->hybrid) assert_int_not_equal(tn_model_quantize_base(&q, TN_QUANT_NF4), 0);

    float *gq, *gd;
    int64_t n;
    double lq = step(&q, src, ids, labels, &gq, &n), ld = step(&d, src, ids, labels, &gd, &n);
    double worst = 0;
    for (int64_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)gq[i] - gd[i]));
    printf("  %s, MLX %s base: loss %.6f, on its dequantized F32 folder %.6f; LoRA gradients differ by at most %.2e\n", src,
           o->mlxlm ? (o->bits ? "4-bit, mlx-lm names," : "BF16 experts / mlp, mlx-lm names,") : "4-bit", lq, ld, worst);
    assert_true(lq == ld);
    assert_true(worst == 0);
    free(gq), free(gd);
    tn_model_close(&q);
    tn_model_close(&d);

    if (o->mlxlm && !o->bits) {
        /* --qlora on mlx-lm's 16-bit names: the base quantized at load equals
         * the one of the Hugging Face folder */
        if (tn_model_open(mlx, 16, &q) != 0) fail_msg("%s", tn_error());
        if (tn_model_open(plain, 16, &d) != 0) fail_msg("%s", tn_error());
        if (tn_model_quantize_base(&q, TN_QUANT_NF4) != 0 || tn_model_quantize_base(&d, TN_QUANT_NF4) != 0) fail_msg("%s", tn_error());
        lq = step(&q, src, ids, labels, &gq, &n), ld = step(&d, src, ids, labels, &gd, &n);
        worst = 0;
        for (int64_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)gq[i] - gd[i]));
        printf("    --qlora nf4 on it: loss %.6f, on the F32 folder %.6f; LoRA gradients differ by at most %.2e\n", lq, ld, worst);
        assert_true(lq == ld);
        assert_true(worst == 0);
        free(gq), free(gd);
        tn_model_close(&q);
        tn_model_close(&d);
    }

    tn_model full;
    if (tn_model_open(mlx, 16, &full) != 0) fail_msg("%s", tn_error());
    assert_int_not_equal(tn_model_make_trainable(&full, -1), 0);
    if (o->bits) assert_non_null(strstr(tn_error(), "quantized"));
    tn_model_close(&full);

    free(ids), free(labels);
    tn_safetensors_close(&bt);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_llama(void **state) { step_equals_dequantized("tests/fixtures/llama", &plain_opts); }
/* Granite 4.0-H: Mamba in_proj/out_proj and the shared MLP quantized, the
 * conv1d in MLX's [C, K, 1]. */
static void test_granitehybrid(void **state) { step_equals_dequantized("tests/fixtures/granitehybrid", &plain_opts); }
/* Granite 4.0-H with experts as mlx-lm converts it (models/granitemoehybrid.py):
 * switch_mlp gate/up/down 4-bit in groups of 32 (the experts' 32-wide
 * down_proj rows need groups of 32), the router 8-bit in groups of 64. */
static void test_granitehybrid_moe_mlxlm(void **state) {
    static const mlx_opts o = {4, 32, 1, 0};
    step_equals_dequantized("tests/fixtures/granitehybrid-moe", &o);
}
/* The same names unquantized, the experts BF16 (mlx_lm.convert --dtype bfloat16). */
static void test_granitehybrid_moe_mlxlm_bf16(void **state) {
    static const mlx_opts o = {0, 0, 1, 1};
    step_equals_dequantized("tests/fixtures/granitehybrid-moe", &o);
}
/* Dense Granite 4.0-H (granite-4.0-h-micro's shape) as mlx-lm converts it:
 * shared_mlp as mlp.gate_proj / up_proj / down_proj, 4-bit in groups of 64. */
static void test_granitehybrid_dense_mlxlm(void **state) {
    static const mlx_opts o = {4, 64, 1, 0};
    step_equals_dequantized("tests/fixtures/granitehybrid", &o);
}
/* The same names, the mlp BF16. */
static void test_granitehybrid_dense_mlxlm_bf16(void **state) {
    static const mlx_opts o = {0, 0, 1, 1};
    step_equals_dequantized("tests/fixtures/granitehybrid", &o);
}

int main(void) {
    const char *out = getenv("TUNE_MLX_OUT");
    if (out && *out) {
        const char *src = getenv("TUNE_MLX_SRC");
        /* TUNE_MLX_MODE=mlxlm: mlx-lm's names (experts, or the dense mlp), as test_granitehybrid_*_mlxlm */
        const char *mode = getenv("TUNE_MLX_MODE");
        /* TUNE_MLX_MODE=mlxlm-bf16: the same names unquantized, those tensors BF16 */
        static const mlx_opts mlxlm = {4, 32, 1, 0}, mlxlm_bf16 = {0, 0, 1, 1};
        const mlx_opts *o = !mode ? &plain_opts : !strcmp(mode, "mlxlm") ? &mlxlm : !strcmp(mode, "mlxlm-bf16") ? &mlxlm_bf16 : &plain_opts;
        make_mlx(src && *src ? src : "tests/fixtures/llama", out, NULL, o);
        return 0;
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_llama), cmocka_unit_test(test_granitehybrid),
                                       cmocka_unit_test(test_granitehybrid_moe_mlxlm), cmocka_unit_test(test_granitehybrid_moe_mlxlm_bf16),
                                       cmocka_unit_test(test_granitehybrid_dense_mlxlm), cmocka_unit_test(test_granitehybrid_dense_mlxlm_bf16)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
