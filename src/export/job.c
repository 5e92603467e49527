/* job.c - the source side shared by the export jobs (see job.h). */
#include "export/job.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export/tensor_read.h"
#include "train/adapter.h"
#include "util/error.h"

int tn_job_open_model(tn_export_job *j, const char *model_dir, const char *adapter_dir, tn_stage stage) {
    snprintf(j->model_dir, sizeof j->model_dir, "%s", model_dir);
    if (tn_spec_load(model_dir, &j->spec) != 0) return -1;
    const tn_family *f = j->spec.family;
    if (f->not_implemented[stage]) return tn_fail("%s: model_type %s: %s", model_dir, j->spec.model_type, f->not_implemented[stage]);
    if (tn_safetensors_open(model_dir, &j->st) != 0) return -1;
    j->st_open = 1;
    char report[4096];
    /* A GGUF base folder (model/gguf_import.h) holds no layer matrices; the
     * GGUF's tensors were checked against the family table when it was made. */
    int problems = j->spec.gguf_layer_bytes ? 0 : tn_spec_check_tensors(&j->spec, &j->st, report, sizeof report);
    if (problems) {
        char *nl = strchr(report, '\n');
        if (nl) *nl = 0;
        return tn_fail("%s: the checkpoint does not match its config.json (%d problem%s; first: %s)", model_dir, problems,
                       problems > 1 ? "s" : "", report);
    }
    if (!adapter_dir) return 0;
    /* tn_adapter_load reads only the spec of the model it is given: a
     * shell without weights keeps this job's memory to one tensor. */
    memset(&j->shell, 0, sizeof j->shell);
    j->shell.spec = j->spec;
    snprintf(j->shell.path, sizeof j->shell.path, "%s", model_dir);
    if (tn_adapter_load(&j->lora, &j->shell, adapter_dir) != 0) return -1;
    j->have_lora = 1;
    return 0;
}

tn_export_tensor *tn_job_add(tn_export_job *j) {
    if ((j->n & (j->n - 1)) == 0) { /* grow at powers of two */
        size_t cap = j->n ? 2 * (size_t)j->n : 64;
        tn_export_tensor *t = realloc(j->t, cap * sizeof *t);
        if (!t) return tn_fail("out of memory"), NULL;
        j->t = t;
    }
    tn_export_tensor *t = &j->t[j->n++];
    memset(t, 0, sizeof *t);
    t->lora = -1;
    return t;
}

int tn_job_lora_of(const tn_export_job *j, const char *name) {
    if (!j->have_lora) return -1;
    int layer;
    if (sscanf(name, "model.layers.%d.", &layer) != 1 || layer < 0 || layer >= j->spec.n_layers) return -1;
    char want[TN_EXPORT_NAME];
    for (const tn_tensor_rule *r = j->spec.family->layer_rules; r->name; r++) {
        if (!r->lora) continue;
        snprintf(want, sizeof want, r->name, layer);
        if (strcmp(want, name)) continue;
        for (int k = 0; k < TN_MOD_COUNT; k++)
            if (!strcmp(tn_module_names[k], r->lora)) return j->lora.index[layer * TN_MOD_COUNT + k];
    }
    return -1;
}

static int64_t elems(const tn_export_tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->n_dims; d++) n *= t->shape[d];
    return n;
}

int tn_job_alloc_work(tn_export_job *j) {
    int64_t most = 0, permuted = 0;
    for (int i = 0; i < j->n; i++) {
        int64_t n = elems(&j->t[i]);
        if (n > most) most = n;
        if ((j->t[i].transform == TN_GGUF_PERMUTE_Q || j->t[i].transform == TN_GGUF_PERMUTE_K) && n > permuted) permuted = n;
    }
    j->work_elems = most;
    j->work = tn_malloc((size_t)(most ? most : 1) * sizeof(float), "fp32 tensor buffer");
    if (!j->work) return -1;
    if (permuted) {
        j->scratch = tn_malloc((size_t)permuted * sizeof(float), "fp32 permutation buffer");
        if (!j->scratch) return -1;
    }
    return 0;
}

int tn_job_out_shape(const tn_export_job *j, tn_export_tensor *t) {
    const int nd = t->n_dims;
    t->out_dims = nd;
    memcpy(t->out_shape, t->shape, sizeof t->shape);
    const char *what = t->src[0] ? t->src : t->name;
    switch (t->transform) {
    case TN_GGUF_NEG_EXP:
    case TN_GGUF_COLUMN:
        if (nd != 1) return tn_fail("%s: tensor %s: expected 1 dimension, has %d", j->model_dir, what, nd);
        t->out_dims = 2, t->out_shape[1] = 1;
        return 0;
    case TN_GGUF_SQUEEZE:
        if (nd != 3 || (t->shape[1] != 1 && t->shape[2] != 1))
            return tn_fail("%s: tensor %s: expected a conv1d weight [C, 1, K] or [C, K, 1]", j->model_dir, what);
        t->out_dims = 2, t->out_shape[1] = t->shape[1] == 1 ? t->shape[2] : t->shape[1];
        return 0;
    case TN_GGUF_GROUPS: {
        const int64_t g = j->spec.mamba_groups;
        if (nd != 1 || g <= 0 || t->shape[0] % g)
            return tn_fail("%s: tensor %s: %lld values do not split into %lld groups", j->model_dir, what, (long long)t->shape[0], (long long)g);
        t->out_dims = 2, t->out_shape[0] = g, t->out_shape[1] = t->shape[0] / g;
        return 0;
    }
    case TN_GGUF_FIRST_HALF:
    case TN_GGUF_SECOND_HALF:
        if (nd < 2 || t->shape[nd - 2] % 2)
            return tn_fail("%s: tensor %s: cannot split its rows into gate and up halves", j->model_dir, what);
        t->out_shape[nd - 2] = t->shape[nd - 2] / 2;
        return 0;
    default: return 0;
    }
}

void tn_permute_rows(const float *src, float *dst, int64_t rows, int64_t cols, int64_t heads) {
    /* view rows as (heads, 2, hd/2), swap the last two: new (h, i, k) = old (h, k, i) */
    const int64_t hd = rows / heads, half = hd / 2;
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
    for (int64_t r = 0; r < rows; r++) {
        const int64_t h = r / hd, i = (r % hd) / 2, k = r % 2;
        memcpy(dst + r * cols, src + (h * hd + k * half + i) * cols, (size_t)cols * sizeof(float));
    }
}

float *tn_job_load(tn_export_job *j, const tn_export_tensor *t, int transform) {
    float *w = j->work;
    const int64_t n = elems(t);
    if (j->kind == TN_JOB_GGUF_ADAPTER) {
        const tn_lora_module *m = &j->lora.mods[t->lora];
        memcpy(w, t->lora_part ? m->b : m->a, (size_t)n * sizeof(float));
    } else if (!t->src[0]) {
        memcpy(w, j->rope_freqs, (size_t)n * sizeof(float));
    } else {
        if (tn_tensor_read_f32(&j->st, &j->spec, t->src, w, j->model_dir) != 0) return NULL;
        if (t->lora >= 0) {
            /* W [out, in] += scale · B [out, r] · A [r, in], in fp32 */
            const tn_lora_module *m = &j->lora.mods[t->lora];
            if (t->shape[0] != m->out || t->shape[1] != m->in)
                return tn_fail("%s: tensor %s is [%lld, %lld] but the adapter's LoRA for it is [%d, %d]", j->model_dir, t->src,
                               (long long)t->shape[0], (long long)t->shape[1], m->out, m->in),
                       NULL;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m->out, m->in, j->lora.rank, j->lora.scale, m->b, j->lora.rank, m->a,
                        m->in, 1.0f, w, m->in);
        }
    }
    const int64_t rows = t->shape[0], cols = t->n_dims > 1 ? n / rows : 1;
    switch (transform ? t->transform : TN_GGUF_COPY) {
    case TN_GGUF_PERMUTE_Q:
    case TN_GGUF_PERMUTE_K: {
        int64_t heads = t->transform == TN_GGUF_PERMUTE_Q ? j->spec.n_heads : j->spec.n_kv_heads;
        if (heads <= 0 || rows % (2 * heads))
            return tn_fail("%s: tensor %s: %lld rows do not split into %lld heads of pairs", j->model_dir, t->src, (long long)rows,
                           (long long)heads),
                   NULL;
        tn_permute_rows(w, j->scratch, rows, cols, heads);
        return j->scratch;
    }
    case TN_GGUF_PLUS_ONE:
        for (int64_t i = 0; i < n; i++) w[i] += 1.0f;
        return w;
    case TN_GGUF_NEG_EXP:
        for (int64_t i = 0; i < n; i++) w[i] = -expf(w[i]);
        return w;
    case TN_GGUF_FIRST_HALF:
    case TN_GGUF_SECOND_HALF: {
        /* per outer block (expert) of [2F, C]: rows [0, F) or [F, 2F),
         * compacted in place (each destination lies at or before its source) */
        const int nd = t->n_dims;
        const int64_t r2 = t->shape[nd - 2], c = t->shape[nd - 1], half = r2 / 2;
        const int64_t outer = n / (r2 * c), off = t->transform == TN_GGUF_SECOND_HALF ? half : 0;
        for (int64_t e = 0; e < outer; e++) memmove(w + e * half * c, w + (e * r2 + off) * c, (size_t)(half * c) * sizeof(float));
        return w;
    }
    default: return w;
    }
}

int tn_export_run(tn_export_job *j) {
    switch (j->kind) {
    case TN_JOB_GGUF: return tn_gguf_export_write(j);
    case TN_JOB_GGUF_ADAPTER: return tn_gguf_adapter_write(j);
    case TN_JOB_FUSE: return tn_fuse_write(j);
    }
    return tn_fail("internal: unknown export job");
}

void tn_export_free(tn_export_job *j) {
    if (!j) return;
    if (j->have_lora) tn_lora_free(&j->lora);
    if (j->st_open) tn_safetensors_close(&j->st);
    tn_gguf_writer_free(j->w);
    free(j->t);
    free(j->work);
    free(j->scratch);
    free(j->desc);
    free(j);
}
