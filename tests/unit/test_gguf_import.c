/* test_gguf_import.c - GGUF model files read back as Hugging Face folders
 * (model/gguf_import.h), held to the folders they came from:
 *
 * - every dense fixture exported as F32 (tune export), read back: each
 *   tensor bit for bit the fixture's (Gemma 2's norms, stored as w + 1,
 *   come back within an ulp of 1), the same spec, and teacher-forced logits
 *   of tune's inference engine (what `tune generate` runs) equal to the
 *   folder's, with the same greedy continuation;
 * - quantized exports (Q8_0 of every family; Q4_0, Q4_K_M, Q6_K of the
 *   256-wide llama): the weights bit for bit those of `tune export
 *   --dequantized` (what llama.cpp computes with), the logits equal to that
 *   folder's, and near the source's (the difference is printed per family
 *   and held to a bound for Q8_0);
 * - the dequantizers that only reading needs (Q4_1, Q5_1, Q2_K, Q3_K, Q5_K,
 *   IQ4_NL, IQ4_XS) bit for bit against llama.cpp's prebuilt libggml-base
 *   (skipped, saying so, without node_modules);
 * - Llama 3 rope scaling recovered from rope_freqs for the real 3.1 / 3.2
 *   settings, and refused for factors no Llama 3 setting gives;
 * - what cannot be read is refused with a message naming the file: an
 *   adapter GGUF, another architecture, a missing tensor, a wrong shape, a
 *   type tune does not read, a tensor the family does not have. */
#define _DEFAULT_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dlfcn.h>
#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "export/export.h"
#include "export/tensor_read.h"
#include "generate/infer.h"
#include "io/gguf_write.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "model/gguf_import.h"
#include "quant/dequant_gguf.h"
#include "quant/quant.h"
#include "text/tokenizer.h"
#include "train/model.h"
#include "util/error.h"
#include "util/platform.h"
#include "util/rng.h"

static char tmp[256];

static const char *root(void) {
    const char *r = getenv("TUNE_ROOT");
    return r && *r ? r : ".";
}

static int setup(void **state) {
    (void)state;
    snprintf(tmp, sizeof tmp, "/tmp/tune-gguf-import-%d", (int)getpid());
    return tn_make_dirs(tmp) == 0 ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- helpers ---- */

static void export_gguf(const char *family, const char *type_name, const char *gguf, const char *deq_dir) {
    char fx[4200];
    snprintf(fx, sizeof fx, "%s/tests/fixtures/%s", root(), family);
    tn_export_job *job;
    int t = tn_file_type_parse(type_name);
    assert_true(t >= 0);
    if (tn_gguf_export_prepare(&job, fx, NULL, gguf, (tn_file_type)t) || (deq_dir && tn_gguf_export_set_dequantized(job, deq_dir)) ||
        tn_export_run(job))
        fail_msg("export %s %s: %s", family, type_name, tn_error());
    tn_export_free(job);
}

/* Largest |a - b| over the tensors of folder `ref`, all of which `got`
 * must hold with the same shape. */
static double max_weight_diff(const char *got, const char *ref, int *n_different) {
    tn_safetensors a, b;
    if (tn_safetensors_open(got, &a) || tn_safetensors_open(ref, &b)) fail_msg("%s", tn_error());
    assert_int_equal(a.n_tensors, b.n_tensors);
    double worst = 0;
    *n_different = 0;
    for (int i = 0; i < b.n_tensors; i++) {
        const tn_tensor_info *tb = &b.tensors[i], *ta = tn_safetensors_find(&a, tb->name);
        if (!ta) fail_msg("%s lacks %s", got, tb->name);
        assert_int_equal(ta->n_dims, tb->n_dims);
        for (int d = 0; d < tb->n_dims; d++) assert_int_equal(ta->shape[d], tb->shape[d]);
        float *x = malloc(tb->n_elements * 4), *y = malloc(tb->n_elements * 4);
        assert_int_equal(tn_tensor_read_f32(&a, NULL, ta->name, x, got), 0);
        assert_int_equal(tn_tensor_read_f32(&b, NULL, tb->name, y, ref), 0);
        int differs = 0;
        for (uint64_t k = 0; k < tb->n_elements; k++) {
            double d = fabs((double)x[k] - (double)y[k]);
            if (memcmp(&x[k], &y[k], 4)) differs = 1;
            if (d > worst) worst = d;
        }
        *n_different += differs;
        free(x), free(y);
    }
    tn_safetensors_close(&a);
    tn_safetensors_close(&b);
    return worst;
}

/* The teacher-forced next-token logits of `n` ids through tune's
 * inference engine, [n][V], and a greedy continuation of `g` ids. */
static float *run_logits(const char *dir, const int32_t *ids, int n, int g, int32_t *greedy, int64_t *V_out) {
    tn_model m;
    if (tn_model_open(dir, n + g + 1, &m)) fail_msg("%s: %s", dir, tn_error());
    tn_infer s;
    /* decode through the fp32 weights whatever the folder's dtype, so that
     * identical weights give identical logits (a BF16 folder such as
     * llama-wide otherwise decodes from its stored rows, generate/qmatvec.h:
     * the same products in another order of additions) */
    setenv("TUNE_DECODE_FP32", "1", 1);
    assert_int_equal(tn_infer_init(&s, &m, NULL, n + g + 1), 0);
    unsetenv("TUNE_DECODE_FP32");
    const int64_t V = m.spec.vocab_size;
    float *out = malloc((size_t)(n * V) * sizeof *out);
    for (int i = 0; i < n; i++) {
        assert_int_equal(tn_infer_forward(&s, &m, NULL, &ids[i], 1), 0);
        memcpy(out + i * V, s.logits, (size_t)V * sizeof *out);
    }
    for (int k = 0; k < g; k++) {
        int32_t best = 0;
        for (int64_t v = 1; v < V; v++)
            if (s.logits[v] > s.logits[best]) best = (int32_t)v;
        greedy[k] = best;
        assert_int_equal(tn_infer_forward(&s, &m, NULL, &best, 1), 0);
    }
    tn_infer_free(&s);
    tn_model_close(&m);
    *V_out = V;
    return out;
}

/* Largest |softmax(a) - softmax(b)| and |a - b| over the rows. */
static void compare_logits(const float *a, const float *b, int n, int64_t V, double *dprob, double *dlogit) {
    *dprob = *dlogit = 0;
    double *pa = malloc((size_t)V * sizeof *pa), *pb = malloc((size_t)V * sizeof *pb);
    for (int i = 0; i < n; i++) {
        const float *x = a + i * V, *y = b + i * V;
        double ma = x[0], mb = y[0], sa = 0, sb = 0;
        for (int64_t v = 0; v < V; v++) ma = fmax(ma, x[v]), mb = fmax(mb, y[v]);
        for (int64_t v = 0; v < V; v++) sa += (pa[v] = exp(x[v] - ma)), sb += (pb[v] = exp(y[v] - mb));
        for (int64_t v = 0; v < V; v++) {
            *dprob = fmax(*dprob, fabs(pa[v] / sa - pb[v] / sb));
            *dlogit = fmax(*dlogit, fabs((double)x[v] - (double)y[v]));
        }
    }
    free(pa), free(pb);
}

static int32_t *fixture_ids(const char *fx, int *n) {
    tn_tokenizer *t = tn_tokenizer_load(fx);
    assert_non_null(t);
    const char *text = "The quick brown fox jumps over the lazy dog. 12345 Hello, world! Wie geht's?";
    tn_ids ids = {0};
    assert_int_equal(tn_tokenizer_encode(t, text, strlen(text), 1, &ids), 0);
    tn_tokenizer_free(t);
    *n = (int)ids.n;
    return ids.ids;
}

/* ---- F32: the folder comes back ---- */

static void test_f32_round_trip(void **state) {
    (void)state;
    static const char *const families[] = {"llama", "mistral", "qwen2", "gemma2", "granite", "llama-wide"};
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
        char fx[4200], gguf[512], dir[512];
        snprintf(fx, sizeof fx, "%s/tests/fixtures/%s", root(), families[f]);
        snprintf(gguf, sizeof gguf, "%s/%s.f32.gguf", tmp, families[f]);
        snprintf(dir, sizeof dir, "%s/%s.f32", tmp, families[f]);
        export_gguf(families[f], "f32", gguf, NULL);
        if (tn_gguf_to_hf(gguf, dir)) fail_msg("%s: %s", families[f], tn_error());
        int differ;
        double dw = max_weight_diff(dir, fx, &differ);
        int gemma = !strcmp(families[f], "gemma2");
        /* Gemma's norms: (w + 1) - 1 in float, within an ulp of 1 */
        if (gemma ? dw > 1.2e-7 : differ != 0) fail_msg("%s: %d tensors differ, by up to %g", families[f], differ, dw);
        /* the spec */
        tn_spec a, b;
        assert_int_equal(tn_spec_load(dir, &a), 0);
        assert_int_equal(tn_spec_load(fx, &b), 0);
        assert_int_equal(a.vocab_size, b.vocab_size);
        assert_int_equal(a.hidden, b.hidden);
        assert_int_equal(a.intermediate, b.intermediate);
        assert_int_equal(a.n_layers, b.n_layers);
        assert_int_equal(a.n_heads, b.n_heads);
        assert_int_equal(a.n_kv_heads, b.n_kv_heads);
        assert_int_equal(a.head_dim, b.head_dim);
        assert_int_equal(a.max_position, b.max_position);
        assert_true((float)a.rms_eps == (float)b.rms_eps);
        assert_true((float)a.rope_theta == (float)b.rope_theta);
        assert_int_equal(a.rope, b.rope);
        if (a.rope == TN_ROPE_LLAMA3) {
            assert_true(a.rope_factor == b.rope_factor && a.rope_low_freq_factor == b.rope_low_freq_factor &&
                        a.rope_high_freq_factor == b.rope_high_freq_factor);
            assert_int_equal(a.rope_original_max_position, b.rope_original_max_position);
        }
        assert_int_equal(a.tied_embeddings, b.tied_embeddings);
        assert_int_equal(a.attention_bias, b.attention_bias);
        assert_true((float)a.attn_softcap == (float)b.attn_softcap && (float)a.final_softcap == (float)b.final_softcap);
        assert_true(a.query_pre_attn_scalar == b.query_pre_attn_scalar);
        assert_int_equal(a.sliding_window, b.sliding_window);
        assert_true((float)a.embedding_multiplier == (float)b.embedding_multiplier &&
                    (float)a.residual_multiplier == (float)b.residual_multiplier &&
                    (float)a.attention_multiplier == (float)b.attention_multiplier && (float)a.logits_scaling == (float)b.logits_scaling);
        /* the logits */
        int n;
        int32_t *ids = fixture_ids(fx, &n), ga[16], gb[16];
        int64_t V;
        float *la = run_logits(dir, ids, n, 16, ga, &V), *lb = run_logits(fx, ids, n, 16, gb, &V);
        double dp, dl;
        compare_logits(la, lb, n, V, &dp, &dl);
        fprintf(stderr, "test_gguf_import: %-10s F32 GGUF vs folder: weights %s, logits max |diff| %.3g, probabilities %.3g, greedy %s\n",
                families[f], differ ? "within 1.2e-7" : "identical", dl, dp, memcmp(ga, gb, sizeof ga) ? "DIFFERENT" : "same");
        if (gemma ? dl > 1e-4 : dl != 0) fail_msg("%s: logits differ by %g", families[f], dl);
        assert_memory_equal(ga, gb, sizeof ga);
        free(la), free(lb), free(ids);
    }
}

/* ---- Granite 4.0-H: the Mamba2 transforms undone ---- */

/* Every tensor of the fixture comes back under its name and shape; all but
 * A_log bit for bit (ssm_a = -expf(A_log), read back as logf(-ssm_a), may
 * round by an ulp or so); `tune check`'s tensor check passes on the
 * folder; the spec's hybrid fields; the logits and the greedy
 * continuation. */
static void test_hybrid_round_trip(void **state) {
    (void)state;
    static const char *const families[] = {"granitehybrid", "granitehybrid-moe"};
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
        char fx[4200], gguf[512], dir[512];
        snprintf(fx, sizeof fx, "%s/tests/fixtures/%s", root(), families[f]);
        snprintf(gguf, sizeof gguf, "%s/%s.f32.gguf", tmp, families[f]);
        snprintf(dir, sizeof dir, "%s/%s.f32", tmp, families[f]);
        export_gguf(families[f], "f32", gguf, NULL);
        if (tn_gguf_to_hf(gguf, dir)) fail_msg("%s: %s", families[f], tn_error());
        tn_safetensors a, b;
        if (tn_safetensors_open(dir, &a) || tn_safetensors_open(fx, &b)) fail_msg("%s", tn_error());
        assert_int_equal(a.n_tensors, b.n_tensors);
        double d_alog = 0, rel_alog = 0;
        int n_alog_differ = 0;
        for (int i = 0; i < b.n_tensors; i++) {
            const tn_tensor_info *tb = &b.tensors[i], *ta = tn_safetensors_find(&a, tb->name);
            if (!ta) fail_msg("%s: the GGUF lacks %s", families[f], tb->name);
            assert_int_equal(ta->n_dims, tb->n_dims);
            for (int d = 0; d < tb->n_dims; d++) assert_int_equal(ta->shape[d], tb->shape[d]);
            float *x = malloc(tb->n_elements * 4), *y = malloc(tb->n_elements * 4);
            assert_int_equal(tn_tensor_read_f32(&a, NULL, ta->name, x, dir), 0);
            assert_int_equal(tn_tensor_read_f32(&b, NULL, tb->name, y, fx), 0);
            int alog = strstr(tb->name, ".A_log") != NULL;
            for (uint64_t k = 0; k < tb->n_elements; k++) {
                if (!memcmp(&x[k], &y[k], 4)) continue;
                if (!alog) fail_msg("%s: %s[%llu] is %.9g, the fixture's %.9g", families[f], tb->name, (unsigned long long)k, (double)x[k], (double)y[k]);
                n_alog_differ++;
                d_alog = fmax(d_alog, fabs((double)x[k] - (double)y[k]));
                rel_alog = fmax(rel_alog, fabs((double)x[k] - (double)y[k]) / fmax(fabs((double)y[k]), 1e-30));
            }
            free(x), free(y);
        }
        tn_safetensors_close(&a);
        tn_safetensors_close(&b);
        /* logf(-(-expf(a))): exp rounds to half an ulp relative, which log
         * turns into an absolute error of about 6e-8 */
        if (d_alog > 2.4e-7) fail_msg("%s: A_log differs by up to %g (relative %g)", families[f], d_alog, rel_alog);
        tn_spec sa, sb;
        assert_int_equal(tn_spec_load(dir, &sa), 0);
        assert_int_equal(tn_spec_load(fx, &sb), 0);
        /* what `tune check` runs: the family table explains every tensor */
        char report[2048] = "";
        if (tn_safetensors_open(dir, &a)) fail_msg("%s", tn_error());
        int problems = tn_spec_check_tensors(&sa, &a, report, sizeof report);
        tn_safetensors_close(&a);
        if (problems) fail_msg("%s: tune check finds %d problems: %s", families[f], problems, report);
        assert_int_equal(sa.n_layers, sb.n_layers);
        for (int l = 0; l < sa.n_layers; l++) assert_int_equal(sa.layer_kind[l], sb.layer_kind[l]);
        assert_int_equal(sa.n_heads, sb.n_heads);
        assert_int_equal(sa.n_kv_heads, sb.n_kv_heads);
        assert_int_equal(sa.head_dim, sb.head_dim);
        assert_int_equal(sa.intermediate, sb.intermediate);
        assert_int_equal(sa.shared_intermediate, sb.shared_intermediate);
        assert_int_equal(sa.n_experts, sb.n_experts);
        assert_int_equal(sa.n_experts_per_token, sb.n_experts_per_token);
        assert_int_equal(sa.mamba_state, sb.mamba_state);
        assert_int_equal(sa.mamba_groups, sb.mamba_groups);
        assert_int_equal(sa.mamba_kernel, sb.mamba_kernel);
        assert_int_equal(sa.mamba_heads, sb.mamba_heads);
        assert_int_equal(sa.mamba_head_dim, sb.mamba_head_dim);
        assert_int_equal(sa.mamba_conv_bias, sb.mamba_conv_bias);
        assert_int_equal(sa.mamba_proj_bias, sb.mamba_proj_bias);
        assert_int_equal(sa.rope, sb.rope);
        assert_int_equal(sa.tied_embeddings, sb.tied_embeddings);
        assert_true((float)sa.rms_eps == (float)sb.rms_eps);
        assert_true((float)sa.embedding_multiplier == (float)sb.embedding_multiplier &&
                    (float)sa.residual_multiplier == (float)sb.residual_multiplier &&
                    (float)sa.attention_multiplier == (float)sb.attention_multiplier && (float)sa.logits_scaling == (float)sb.logits_scaling);
        int n;
        int32_t *ids = fixture_ids(fx, &n), ga[16], gb[16];
        int64_t V;
        float *la = run_logits(dir, ids, n, 16, ga, &V), *lb = run_logits(fx, ids, n, 16, gb, &V);
        double dp, dl;
        compare_logits(la, lb, n, V, &dp, &dl);
        fprintf(stderr,
                "test_gguf_import: %-17s F32 GGUF vs folder: weights identical but A_log (%d values differ, by up to %.3g, relative %.3g), logits "
                "max |diff| %.3g, probabilities %.3g, greedy %s\n",
                families[f], n_alog_differ, d_alog, rel_alog, dl, dp, memcmp(ga, gb, sizeof ga) ? "DIFFERENT" : "same");
        if (dl > 1e-4) fail_msg("%s: logits differ by %g", families[f], dl);
        assert_memory_equal(ga, gb, sizeof ga);
        free(la), free(lb), free(ids);
    }
}

/* ---- quantized: what llama.cpp computes with ---- */

static void test_quantized(void **state) {
    (void)state;
    static const struct {
        const char *family, *type;
        double max_dprob; /* against the source folder; < 0: printed only */
    } cases[] = {
        {"llama", "q8_0", 0.05},    {"mistral", "q8_0", 0.05},     {"qwen2", "q8_0", 0.05},   {"gemma2", "q8_0", 0.05},
        {"granite", "q8_0", 0.05},  {"llama-wide", "q8_0", 0.15},   {"llama-wide", "q4_0", -1}, {"llama-wide", "q4_k_m", -1},
        {"llama-wide", "q6_k", -1}, {"qwen2", "q4_k_m", -1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char fx[4200], gguf[512], dir[512], deq[512];
        snprintf(fx, sizeof fx, "%s/tests/fixtures/%s", root(), cases[c].family);
        snprintf(gguf, sizeof gguf, "%s/%s.%s.gguf", tmp, cases[c].family, cases[c].type);
        snprintf(dir, sizeof dir, "%s/%s.%s", tmp, cases[c].family, cases[c].type);
        snprintf(deq, sizeof deq, "%s/%s.%s.deq", tmp, cases[c].family, cases[c].type);
        export_gguf(cases[c].family, cases[c].type, gguf, deq);
        if (tn_gguf_to_hf(gguf, dir)) fail_msg("%s %s: %s", cases[c].family, cases[c].type, tn_error());
        int differ;
        int gemma = !strcmp(cases[c].family, "gemma2");
        double dw = max_weight_diff(dir, deq, &differ);
        if (gemma ? dw > 1.2e-7 : differ != 0) fail_msg("%s %s: %d tensors differ from --dequantized, by up to %g", cases[c].family, cases[c].type, differ, dw);
        int n;
        int32_t *ids = fixture_ids(fx, &n), g1[16], g2[16], g3[16];
        int64_t V;
        float *lq = run_logits(dir, ids, n, 16, g1, &V), *ld = run_logits(deq, ids, n, 16, g2, &V), *ls = run_logits(fx, ids, n, 16, g3, &V);
        double dp_d, dl_d, dp_s, dl_s;
        compare_logits(lq, ld, n, V, &dp_d, &dl_d);
        compare_logits(lq, ls, n, V, &dp_s, &dl_s);
        int same_top = 0;
        for (int i = 0; i < n; i++) {
            int64_t a = 0, b = 0;
            for (int64_t v = 1; v < V; v++) {
                if (lq[i * V + v] > lq[i * V + a]) a = v;
                if (ls[i * V + v] > ls[i * V + b]) b = v;
            }
            same_top += a == b;
        }
        fprintf(stderr,
                "test_gguf_import: %-10s %-6s GGUF vs --dequantized: logits |diff| %.3g; vs source folder: logits %.3g, probabilities %.3g, "
                "top-1 %d/%d, greedy %s\n",
                cases[c].family, cases[c].type, dl_d, dl_s, dp_s, same_top, n, memcmp(g1, g3, sizeof g1) ? "different" : "same");
        if (gemma ? dl_d > 1e-4 : dl_d != 0) fail_msg("%s %s: logits differ from --dequantized by %g", cases[c].family, cases[c].type, dl_d);
        assert_memory_equal(g1, g2, sizeof g1);
        if (cases[c].max_dprob >= 0 && dp_s > cases[c].max_dprob)
            fail_msg("%s %s: probabilities differ from the source by %g (bound %g)", cases[c].family, cases[c].type, dp_s, cases[c].max_dprob);
        free(lq), free(ld), free(ls), free(ids);
    }
}

/* ---- dequantizers against ggml ---- */

typedef size_t (*quantize_chunk_fn)(int type, const float *src, void *dst, int64_t start, int64_t nrows, int64_t n_per_row,
                                    const float *imatrix);
typedef void (*dequantize_row_fn)(const void *x, float *y, int64_t k);
typedef void (*quantize_init_fn)(int type);

static void test_dequantizers_vs_ggml(void **state) {
    (void)state;
    char pattern[4200];
    snprintf(pattern, sizeof pattern, "%s/node_modules/@node-llama-cpp/linux-x64/bins/*/libggml-base.so", root());
    glob_t gl;
    if (glob(pattern, 0, NULL, &gl) != 0 || gl.gl_pathc == 0) {
        fprintf(stderr, "test_gguf_import: llama.cpp's libggml-base.so not found under node_modules; skipping the dequantizer check\n");
        globfree(&gl);
        skip();
    }
    void *lib = dlopen(gl.gl_pathv[0], RTLD_NOW | RTLD_LOCAL);
    globfree(&gl);
    assert_non_null(lib);
    quantize_chunk_fn quantize = (quantize_chunk_fn)dlsym(lib, "ggml_quantize_chunk");
    quantize_init_fn init = (quantize_init_fn)dlsym(lib, "ggml_quantize_init");
    assert_non_null(quantize);
    static const struct {
        int type;
        const char *fn;
    } types[] = {{3, "dequantize_row_q4_1"}, {7, "dequantize_row_q5_1"},   {10, "dequantize_row_q2_K"},  {11, "dequantize_row_q3_K"},
                 {13, "dequantize_row_q5_K"}, {20, "dequantize_row_iq4_nl"}, {23, "dequantize_row_iq4_xs"}, {12, "dequantize_row_q4_K"},
                 {14, "dequantize_row_q6_K"}, {8, "dequantize_row_q8_0"}};
    const int64_t rows = 16, n = 512;
    float *x = malloc((size_t)(rows * n) * sizeof *x), *ours = malloc((size_t)n * sizeof *ours), *theirs = malloc((size_t)n * sizeof *theirs);
    tn_rng r;
    tn_rng_seed(&r, 7, 1);
    for (int64_t i = 0; i < rows * n; i++) x[i] = tn_rng_normal(&r) * powf(10.0f, (float)(i / n % 5) - 2.0f);
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        dequantize_row_fn ref = (dequantize_row_fn)dlsym(lib, types[t].fn);
        assert_non_null(ref);
        assert_true(tn_gguf_can_dequantize(types[t].type));
        if (init) init(types[t].type);
        const uint64_t row_bytes = (uint64_t)(n / tn_gguf_type_block(types[t].type)) * (uint64_t)tn_gguf_type_bytes(types[t].type);
        unsigned char *q = malloc(row_bytes * (uint64_t)rows);
        assert_int_equal(quantize(types[t].type, x, q, 0, rows, n, NULL), row_bytes * (uint64_t)rows);
        for (int64_t i = 0; i < rows; i++) {
            tn_gguf_dequantize_row(types[t].type, q + (uint64_t)i * row_bytes, ours, n);
            ref(q + (uint64_t)i * row_bytes, theirs, n);
            if (memcmp(ours, theirs, (size_t)n * sizeof *ours)) fail_msg("%s: row %lld differs from ggml's", types[t].fn, (long long)i);
        }
        free(q);
        fprintf(stderr, "test_gguf_import: %-6s dequantized bit for bit as ggml (%lld rows of %lld)\n", tn_gguf_type_name(types[t].type),
                (long long)rows, (long long)n);
    }
    free(x), free(ours), free(theirs);
    dlclose(lib);
}

/* ---- small GGUF files made here ---- */

typedef struct {
    int head_dim, heads, kv_heads, layers, vocab, ff;
    int with_rope_freqs;
    float rope_factors[128];
    const char *arch, *type;   /* general.architecture, general.type */
    int skip_tensor;           /* index of a tensor to leave out, or -1 */
    int bad_shape_tensor;      /* index of a tensor written with a wrong row length, or -1 */
    const char *extra_tensor;  /* a tensor the family lacks, or NULL */
} tiny;

static int fill_random(void *ctx, int i, void *buf, uint64_t n) {
    const tiny *t = ctx;
    if (i == 0 && t->with_rope_freqs) {
        memcpy(buf, t->rope_factors, n);
        return 0;
    }
    tn_rng r;
    tn_rng_seed(&r, 99, (uint64_t)i);
    float *f = buf;
    for (uint64_t k = 0; k < n / 4; k++) f[k] = tn_rng_normal(&r) * 0.02f;
    for (uint64_t k = n / 4 * 4; k < n; k++) ((unsigned char *)buf)[k] = 0;
    return 0;
}

static void write_tiny(const char *path, tiny *t) {
    tn_gguf_writer *w = tn_gguf_writer_new();
    const char *arch = t->arch ? t->arch : "llama";
    char k[128];
    const int H = t->head_dim * t->heads, KV = t->head_dim * t->kv_heads;
    assert_int_equal(tn_gguf_set_str(w, "general.architecture", arch), 0);
    if (t->type) assert_int_equal(tn_gguf_set_str(w, "general.type", t->type), 0);
#define KEY_U32(name, v) (snprintf(k, sizeof k, "%s." name, arch), assert_int_equal(tn_gguf_set_u32(w, k, (uint32_t)(v)), 0))
    KEY_U32("context_length", 8192);
    KEY_U32("embedding_length", H);
    KEY_U32("block_count", t->layers);
    KEY_U32("feed_forward_length", t->ff);
    KEY_U32("attention.head_count", t->heads);
    KEY_U32("attention.head_count_kv", t->kv_heads);
    KEY_U32("rope.dimension_count", t->head_dim);
    snprintf(k, sizeof k, "%s.rope.freq_base", arch);
    assert_int_equal(tn_gguf_set_f32(w, k, 500000.0f), 0);
    snprintf(k, sizeof k, "%s.attention.layer_norm_rms_epsilon", arch);
    assert_int_equal(tn_gguf_set_f32(w, k, 1e-5f), 0);
    /* a byte-level vocabulary of single letters */
    const char *toks[26];
    static char letters[26][2];
    for (int i = 0; i < 26; i++) letters[i][0] = (char)('a' + i), toks[i] = letters[i];
    assert_true(t->vocab <= 26);
    assert_int_equal(tn_gguf_set_str(w, "tokenizer.ggml.model", "gpt2"), 0);
    assert_int_equal(tn_gguf_set_str(w, "tokenizer.ggml.pre", "llama-bpe"), 0);
    assert_int_equal(tn_gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, (uint64_t)t->vocab), 0);
    const char *merges[1] = {"a b"};
    assert_int_equal(tn_gguf_set_arr_str(w, "tokenizer.ggml.merges", merges, NULL, 0), 0);
    /* tensors */
    int idx = 0;
#define TENSOR(name, type, nd, ...)                                                                      \
    do {                                                                                                 \
        int64_t ne_[] = {__VA_ARGS__};                                                                   \
        tn_ggml_type ty_ = (type);                                                                       \
        if (idx == t->bad_shape_tensor) ne_[0] += 32;                                                    \
        if (idx != t->skip_tensor) assert_true(tn_gguf_add_tensor(w, name, ty_, nd, ne_) >= 0);         \
        idx++;                                                                                           \
    } while (0)
    if (t->with_rope_freqs) TENSOR("rope_freqs.weight", TN_GGML_F32, 1, t->head_dim / 2);
    TENSOR("token_embd.weight", TN_GGML_F32, 2, H, t->vocab);
    TENSOR("output_norm.weight", TN_GGML_F32, 1, H);
    for (int l = 0; l < t->layers; l++) {
        char n[64];
#define LT(suffix, nd, ...)                              \
    do {                                                 \
        snprintf(n, sizeof n, "blk.%d." suffix, l);      \
        TENSOR(n, TN_GGML_F32, nd, __VA_ARGS__);         \
    } while (0)
        LT("attn_norm.weight", 1, H);
        LT("attn_q.weight", 2, H, H);
        LT("attn_k.weight", 2, H, KV);
        LT("attn_v.weight", 2, H, KV);
        LT("attn_output.weight", 2, H, H);
        LT("ffn_norm.weight", 1, H);
        LT("ffn_gate.weight", 2, H, t->ff);
        LT("ffn_up.weight", 2, H, t->ff);
        LT("ffn_down.weight", 2, t->ff, H);
    }
    if (t->extra_tensor) TENSOR(t->extra_tensor, TN_GGML_F32, 1, H);
    assert_int_equal(tn_gguf_write(w, path, fill_random, t), 0);
    tn_gguf_writer_free(w);
}

static tiny tiny_default(void) {
    tiny t;
    memset(&t, 0, sizeof t);
    t.head_dim = 64, t.heads = 2, t.kv_heads = 1, t.layers = 1, t.vocab = 26, t.ff = 32;
    t.skip_tensor = t.bad_shape_tensor = -1;
    return t;
}

/* convert_hf_to_gguf.py's Llama 3 factors. */
static void llama3_factors(float *out, int dim, double theta, double factor, double lo, double hi, double orig) {
    for (int i = 0; i < dim / 2; i++) {
        float freq = 1.0f / powf((float)theta, (float)(2 * i) / (float)dim);
        double wl = 2 * 3.14159265358979323846 / (double)freq, f;
        if (wl < orig / hi) f = 1;
        else if (wl > orig / lo) f = factor;
        else {
            double s = (orig / wl - lo) / (hi - lo);
            f = 1 / ((1 - s) / factor + s);
        }
        out[i] = (float)f;
    }
}

static void test_llama3_rope(void **state) {
    (void)state;
    static const struct {
        int head_dim;
        double factor, lo, hi, orig;
    } cases[] = {{64, 32, 1, 4, 8192}, {128, 8, 1, 4, 8192}, {64, 32, 1, 4, 64}, {128, 16, 2, 8, 4096}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        tiny t = tiny_default();
        t.head_dim = cases[c].head_dim;
        t.with_rope_freqs = 1;
        llama3_factors(t.rope_factors, t.head_dim, 500000, cases[c].factor, cases[c].lo, cases[c].hi, cases[c].orig);
        char gguf[512], dir[512];
        snprintf(gguf, sizeof gguf, "%s/rope%zu.gguf", tmp, c);
        snprintf(dir, sizeof dir, "%s/rope%zu", tmp, c);
        write_tiny(gguf, &t);
        if (tn_gguf_to_hf(gguf, dir)) fail_msg("%s", tn_error());
        tn_spec s;
        assert_int_equal(tn_spec_load(dir, &s), 0);
        assert_int_equal(s.rope, TN_ROPE_LLAMA3);
        /* the same factors, whatever (low, high, original) stand for them */
        float back[128];
        llama3_factors(back, t.head_dim, s.rope_theta, s.rope_factor, s.rope_low_freq_factor, s.rope_high_freq_factor,
                       (double)s.rope_original_max_position);
        for (int i = 0; i < t.head_dim / 2; i++)
            if (fabsf(back[i] - t.rope_factors[i]) > 1e-5f * t.rope_factors[i])
                fail_msg("case %zu: factor %d: %g back for %g", c, i, (double)back[i], (double)t.rope_factors[i]);
        fprintf(stderr, "test_gguf_import: rope_freqs of (factor %g, low %g, high %g, original %g) -> (%g, %g, %g, %lld)\n", cases[c].factor,
                cases[c].lo, cases[c].hi, cases[c].orig, s.rope_factor, s.rope_low_freq_factor, s.rope_high_freq_factor,
                (long long)s.rope_original_max_position);
        if (cases[c].lo == 1 && cases[c].hi == 4)
            assert_true(s.rope_factor == cases[c].factor && s.rope_low_freq_factor == 1 && s.rope_high_freq_factor == 4 &&
                        s.rope_original_max_position == (int64_t)cases[c].orig);
    }
    /* factors no Llama 3 setting gives */
    tiny t = tiny_default();
    t.with_rope_freqs = 1;
    for (int i = 0; i < 32; i++) t.rope_factors[i] = 1.0f + (float)(i % 3);
    char gguf[512], dir[512];
    snprintf(gguf, sizeof gguf, "%s/rope_bad.gguf", tmp);
    snprintf(dir, sizeof dir, "%s/rope_bad", tmp);
    write_tiny(gguf, &t);
    tn_clear_error();
    assert_int_not_equal(tn_gguf_to_hf(gguf, dir), 0);
    assert_non_null(strstr(tn_error(), "rope_freqs"));
    assert_non_null(strstr(tn_error(), gguf));
}

static void expect_import_error(tiny *t, const char *name, const char *frag) {
    char gguf[512], dir[512];
    snprintf(gguf, sizeof gguf, "%s/%s.gguf", tmp, name);
    write_tiny(gguf, t);
    tn_clear_error();
    if (tn_gguf_unpack_temp(gguf, dir, sizeof dir) == 0) fail_msg("%s: imported", name);
    if (!strstr(tn_error(), gguf) || !strstr(tn_error(), frag)) fail_msg("%s: '%s' lacks the file or '%s'", name, tn_error(), frag);
    fprintf(stderr, "test_gguf_import: refused: %s\n", tn_error());
}

static void test_refusals(void **state) {
    (void)state;
    tiny t = tiny_default();
    char gguf[512], dir[4096];
    snprintf(gguf, sizeof gguf, "%s/tiny_ok.gguf", tmp);
    write_tiny(gguf, &t);
    if (tn_gguf_unpack_temp(gguf, dir, sizeof dir)) fail_msg("%s", tn_error());
    assert_true(tn_is_directory(dir));
    tn_gguf_remove_temp(dir);
    assert_false(tn_file_exists(dir));
    assert_true(tn_is_gguf_file(gguf));
    snprintf(dir, sizeof dir, "%s/tests/fixtures/llama/config.json", root());
    assert_false(tn_is_gguf_file(dir));

    t = tiny_default(), t.type = "adapter";
    expect_import_error(&t, "adapter", "a LoRA adapter GGUF");
    t = tiny_default(), t.arch = "phi3";
    expect_import_error(&t, "phi3", "general.architecture 'phi3' is not supported");
    t = tiny_default(), t.skip_tensor = 4; /* blk.0.attn_k.weight */
    expect_import_error(&t, "missing", "missing tensor blk.0.attn_k.weight [64, 128]");
    t = tiny_default(), t.bad_shape_tensor = 6; /* blk.0.attn_output.weight */
    expect_import_error(&t, "shape", "tensor blk.0.attn_output.weight has shape [128, 160], expected [128, 128]");
    t = tiny_default(), t.extra_tensor = "blk.0.attn_sinks.weight";
    expect_import_error(&t, "extra", "tensor 'blk.0.attn_sinks.weight' is not part of a llama model");
    t = tiny_default(), t.heads = 2, t.kv_heads = 3;
    expect_import_error(&t, "kvheads", "num_key_value_heads 3 must divide num_attention_heads 2");
}

static void test_unreadable_type(void **state) {
    (void)state;
    /* MXFP4: ggml knows it, tune does not read it. The writer only writes the
     * types tune makes, so the last tensor of a written file (blk.0.ffn_down,
     * rows of 32) is retyped by hand: MXFP4 takes fewer bytes than F32, so
     * the layout stays valid. */
    char gguf[512], dir[4096];
    tiny t = tiny_default();
    snprintf(gguf, sizeof gguf, "%s/to_patch.gguf", tmp);
    write_tiny(gguf, &t);
    tn_gguf g;
    assert_int_equal(tn_gguf_open(gguf, &g), 0);
    const tn_gguf_tensor *last = &g.tensors[g.n_tensors - 1];
    assert_string_equal(last->name, "blk.0.ffn_down.weight");
    size_t size = g.file.size, name_at = 0;
    unsigned char *copy = malloc(size);
    memcpy(copy, g.file.data, size);
    for (size_t i = 0; i + 21 < (size_t)g.data_offset; i++)
        if (!memcmp(copy + i, "blk.0.ffn_down.weight", 21)) name_at = i;
    assert_true(name_at > 0);
    size_t type_pos = name_at + 21 + 4 + 2 * 8; /* name, n_dims, ne[2] */
    assert_int_equal(copy[type_pos], 0);
    copy[type_pos] = 39;
    tn_gguf_close(&g);
    snprintf(gguf, sizeof gguf, "%s/mxfp4.gguf", tmp);
    FILE *f = fopen(gguf, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(copy, 1, size, f), size);
    fclose(f);
    free(copy);
    tn_clear_error();
    assert_int_not_equal(tn_gguf_unpack_temp(gguf, dir, sizeof dir), 0);
    if (!strstr(tn_error(), gguf) || !strstr(tn_error(), "tensor 'blk.0.ffn_down.weight' has type MXFP4, which tune does not read"))
        fail_msg("%s", tn_error());
    fprintf(stderr, "test_gguf_import: refused: %s\n", tn_error());
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f32_round_trip), cmocka_unit_test(test_hybrid_round_trip), cmocka_unit_test(test_quantized), cmocka_unit_test(test_dequantizers_vs_ggml),
        cmocka_unit_test(test_llama3_rope),    cmocka_unit_test(test_refusals),  cmocka_unit_test(test_unreadable_type),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
