/* gguf_model.c - `tune export MODEL --gguf OUT --type T [--adapter DIR]`:
 * an HF folder as a GGUF model file for llama.cpp. The tensor names,
 * transforms and metadata keys come from the family table
 * (model/families.c); the per-tensor types from gguf_types.c; the
 * tokenizer from gguf_vocab.c. Each tensor is read (fp32), merged with the
 * adapter, transformed, then converted or quantized on all cores, and
 * written before the next is read. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export/gguf_types.h"
#include "export/gguf_vocab.h"
#include "export/job.h"
#include "export/tensor_read.h"
#include "util/error.h"
#include "util/platform.h"
#include "util/progress.h"

/* The value of a {arch}.* key, from the spec. */
static int set_arch_key(tn_gguf_writer *w, const char *arch, const tn_gguf_key *k, const tn_spec *s) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, k->key);
    double f = 0;
    int64_t u = -1;
    switch (k->value) {
    case TN_GK_CONTEXT: u = s->max_position; break;
    case TN_GK_HIDDEN: u = s->hidden; break;
    case TN_GK_LAYERS: u = s->n_layers; break;
    case TN_GK_FF: u = s->intermediate; break;
    case TN_GK_HEADS: u = s->n_heads; break;
    case TN_GK_KV_HEADS: u = s->n_kv_heads; break;
    case TN_GK_HEAD_DIM: u = s->head_dim; break;
    case TN_GK_VOCAB: u = s->vocab_size; break;
    case TN_GK_SLIDING_WINDOW:
        if (s->sliding_window <= 0) return 0; /* no window: key absent */
        u = s->sliding_window;
        break;
    case TN_GK_RMS_EPS: f = s->rms_eps; break;
    case TN_GK_ROPE_THETA: f = s->rope_theta; break;
    case TN_GK_ATTN_SOFTCAP: f = s->attn_softcap; break;
    case TN_GK_FINAL_SOFTCAP: f = s->final_softcap; break;
    case TN_GK_EMBED_MULT: f = s->embedding_multiplier; break;
    case TN_GK_RESIDUAL_MULT: f = s->residual_multiplier; break;
    case TN_GK_ATTN_MULT: f = s->attention_multiplier; break;
    case TN_GK_LOGITS_SCALE: f = s->logits_scaling; break;
    case TN_GK_CONTEXT_HYBRID: u = s->rope == TN_ROPE_NONE ? (int64_t)1 << 20 : s->max_position; break;
    case TN_GK_KV_HEADS_LAYERS: {
        int32_t kv[TN_MAX_LAYERS];
        for (int l = 0; l < s->n_layers; l++) kv[l] = s->layer_kind[l] == TN_LAYER_MAMBA ? 0 : (int32_t)s->n_kv_heads;
        return tn_gguf_set_arr_i32(w, key, kv, (uint64_t)s->n_layers);
    }
    case TN_GK_ROPE_FINETUNED: return tn_gguf_set_bool(w, key, s->rope != TN_ROPE_NONE);
    case TN_GK_SSM_CONV: u = s->mamba_kernel; break;
    case TN_GK_SSM_STATE: u = s->mamba_state; break;
    case TN_GK_SSM_GROUPS: u = s->mamba_groups; break;
    case TN_GK_SSM_INNER: u = s->mamba_heads * s->mamba_head_dim; break;
    case TN_GK_SSM_DT_RANK: u = s->mamba_heads; break;
    case TN_GK_EXPERTS:
    case TN_GK_EXPERTS_USED:
    case TN_GK_SHARED_FF:
        if (s->n_experts <= 0) return 0; /* dense: keys absent */
        u = k->value == TN_GK_EXPERTS ? s->n_experts : k->value == TN_GK_EXPERTS_USED ? s->n_experts_per_token : s->shared_intermediate;
        break;
    default: return tn_fail("GGUF key %s: no value source", key);
    }
    if (u >= 0) return tn_gguf_set_u32(w, key, (uint32_t)u);
    return tn_gguf_set_f32(w, key, (float)f);
}

/* Llama 3 rope scaling as the per-frequency divisors llama.cpp reads from
 * rope_freqs.weight (convert_hf_to_gguf.py's generate_extra_tensors). */
static void llama3_rope_factors(const tn_spec *s, float *out) {
    const int dim = (int)s->head_dim;
    const double lo_wavelen = (double)s->rope_original_max_position / s->rope_low_freq_factor;
    const double hi_wavelen = (double)s->rope_original_max_position / s->rope_high_freq_factor;
    for (int i = 0; i < dim / 2; i++) {
        float freq = 1.0f / powf((float)s->rope_theta, (float)(2 * i) / (float)dim);
        double wavelen = 2 * 3.14159265358979323846 / (double)freq;
        double f;
        if (wavelen < hi_wavelen) f = 1;
        else if (wavelen > lo_wavelen) f = s->rope_factor;
        else {
            double smooth = ((double)s->rope_original_max_position / wavelen - s->rope_low_freq_factor) /
                            (s->rope_high_freq_factor - s->rope_low_freq_factor);
            f = 1 / ((1 - smooth) / s->rope_factor + smooth);
        }
        out[i] = (float)f;
    }
}

/* Adds the output tensor for HF tensor `src` as GGUF `name`. */
static int plan_tensor(tn_export_job *j, const char *src, const char *name, tn_gguf_transform tr, int layer) {
    tn_export_tensor *t = tn_job_add(j);
    if (!t) return -1;
    snprintf(t->src, sizeof t->src, "%s", src);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_dims = tn_tensor_logical_shape(&j->st, &j->spec, src, t->shape);
    t->transform = tr;
    if (tn_job_out_shape(j, t)) return -1;
    t->lora = tn_job_lora_of(j, src);
    /* llama-quant.cpp counts attn_v tensors, not layers: in a hybrid,
     * attention layer k of n_attention */
    int qi = layer, qn = (int)j->spec.n_layers;
    if (j->spec.family->hybrid && layer >= 0 && strstr(name, "attn_v.weight")) {
        qi = qn = 0;
        for (int l = 0; l < j->spec.n_layers; l++)
            if (j->spec.layer_kind[l] == TN_LAYER_ATTENTION) qi += l < layer, qn++;
    }
    t->type = tn_gguf_tensor_type(j->ftype, name, t->out_dims, t->out_shape[t->out_dims - 1], qi, qn, j->spec.tied_embeddings,
                                  &t->wanted);
    return 0;
}

static int plan_tensors(tn_export_job *j) {
    const tn_family *f = j->spec.family;
    unsigned char *used = calloc((size_t)j->st.n_tensors + 1, 1);
    if (!used) return tn_fail("out of memory");
    char hf[TN_EXPORT_NAME], name[TN_EXPORT_NAME];
    int rc = -1;
    if (j->spec.rope == TN_ROPE_LLAMA3) {
        tn_export_tensor *t = tn_job_add(j);
        if (!t) goto done;
        snprintf(t->name, sizeof t->name, "rope_freqs.weight");
        t->n_dims = t->out_dims = 1;
        t->shape[0] = t->out_shape[0] = j->spec.head_dim / 2;
        t->type = t->wanted = TN_GGML_F32;
        llama3_rope_factors(&j->spec, j->rope_freqs);
    }
    for (int pass = 0; pass < 3; pass++) {
        /* pass 0: embeddings; 1: the layers; 2: final norm and head */
        if (pass == 1) {
            for (int l = 0; l < j->spec.n_layers; l++)
                for (const tn_gguf_name *g = f->gguf_layer; g->hf; g++) {
                    if (!TN_GGUF_NAME_APPLIES(g, &j->spec)) continue;
                    snprintf(hf, sizeof hf, g->hf, l);
                    /* stored as itself or as the family's aliases (mlx-lm's split experts) */
                    const tn_tensor_info *parts[4];
                    int np = tn_tensor_parts(&j->spec, &j->st, hf, parts);
                    if (!np) continue;
                    snprintf(name, sizeof name, g->gguf, l);
                    if (plan_tensor(j, hf, name, g->transform, l)) goto done;
                    for (int p = 0; p < np; p++) used[parts[p] - j->st.tensors] = 1;
                }
            continue;
        }
        for (const tn_gguf_name *g = f->gguf_global; g->hf; g++) {
            int embed = !strcmp(g->gguf, "token_embd.weight");
            if (embed != (pass == 0)) continue;
            const tn_tensor_info *ti = tn_safetensors_find(&j->st, g->hf);
            if (!ti) continue;
            used[ti - j->st.tensors] = 1;
            if (!strcmp(g->gguf, "output.weight") && j->spec.tied_embeddings) continue; /* llama.cpp reuses token_embd */
            if (plan_tensor(j, g->hf, g->gguf, g->transform, -1)) goto done;
        }
    }
    /* Every stored tensor must have found its GGUF name (MLX scales and
     * biases travel with their weight). */
    for (int i = 0; i < j->st.n_tensors; i++) {
        const char *n = j->st.tensors[i].name;
        size_t len = strlen(n);
        if (used[i]) continue;
        if (j->spec.quant_bits && ((len > 7 && !strcmp(n + len - 7, ".scales")) || (len > 7 && !strcmp(n + len - 7, ".biases"))))
            continue;
        tn_fail("%s: tensor %s has no GGUF name for a %s model (not in the family table)", j->model_dir, n, j->spec.model_type);
        goto done;
    }
    rc = 0;
done:
    free(used);
    return rc;
}

static int add_metadata(tn_export_job *j) {
    const tn_spec *s = &j->spec;
    const char *arch = s->family->gguf_arch;
    const char *base = strrchr(j->model_dir, '/');
    char name[sizeof j->model_dir];
    snprintf(name, sizeof name, "%s", base && base[1] ? base + 1 : j->model_dir);
    size_t nl = strlen(name);
    if (nl > 1 && name[nl - 1] == '/') name[nl - 1] = 0;
    tn_gguf_writer *w = j->w;
    if (tn_gguf_set_str(w, "general.architecture", arch) || tn_gguf_set_str(w, "general.type", "model") ||
        tn_gguf_set_str(w, "general.name", name) || tn_gguf_set_u32(w, "general.quantization_version", 2) ||
        tn_gguf_set_u32(w, "general.file_type", (uint32_t)tn_file_type_id(j->ftype)))
        return -1;
    for (const tn_gguf_key *k = s->family->gguf_keys; k->key; k++)
        if (set_arch_key(w, arch, k, s)) return -1;
    if (s->rope == TN_ROPE_LINEAR) {
        char key[160];
        snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
        if (tn_gguf_set_str(w, key, "linear")) return -1;
        snprintf(key, sizeof key, "%s.rope.scaling.factor", arch);
        if (tn_gguf_set_f32(w, key, (float)s->rope_factor)) return -1;
    }
    if (s->family->softcaps && fabs(s->query_pre_attn_scalar - (double)s->head_dim) > 1e-9)
        fprintf(stderr, "tune: warning: %s: query_pre_attn_scalar %g differs from head_dim %lld; llama.cpp scales queries by "
                        "1/sqrt(head_dim), so its outputs will differ from this model's\n",
                j->model_dir, s->query_pre_attn_scalar, (long long)s->head_dim);
    return tn_gguf_add_vocab(w, j->model_dir, s);
}

/* "Q4_K -> Q5_0 for 12 tensors (rows of 64 values) ..." on stderr. */
static void report_fallbacks(const tn_export_job *j) {
    for (int i = 0; i < j->n; i++) {
        const tn_export_tensor *t = &j->t[i];
        if (t->wanted == t->type) continue;
        int first = 1;
        for (int k = 0; k < i; k++)
            if (j->t[k].wanted == t->wanted && j->t[k].type == t->type && j->t[k].wanted != j->t[k].type) first = 0;
        if (!first) continue;
        int count = 0;
        char names[512] = "";
        for (int k = i; k < j->n; k++) {
            const tn_export_tensor *u = &j->t[k];
            if (u->wanted != t->wanted || u->type != t->type) continue;
            if (count < 3) {
                size_t used = strlen(names);
                snprintf(names + used, sizeof names - used, "%s%s", count ? ", " : "", u->name);
            }
            count++;
        }
        fprintf(stderr, "tune: %s -> %s for %d tensor%s whose rows are not a multiple of %d values (%s%s)\n", tn_ggml_type_name(t->wanted),
                tn_ggml_type_name(t->type), count, count > 1 ? "s" : "", tn_ggml_block_size(t->wanted), names, count > 3 ? ", ..." : "");
    }
}

int tn_gguf_export_prepare(tn_export_job **out, const char *model_dir, const char *adapter_dir, const char *out_path, tn_file_type type) {
    *out = NULL;
    tn_export_job *j = tn_calloc(1, sizeof *j, "export job");
    if (!j) return -1;
    j->kind = TN_JOB_GGUF;
    j->ftype = type;
    snprintf(j->out, sizeof j->out, "%s", out_path);
    *out = j;
    if (tn_job_open_model(j, model_dir, adapter_dir, TN_STAGE_GGUF)) return -1;
    if (!j->spec.family->gguf_layer) return tn_fail("%s: GGUF export of %s models is not implemented", model_dir, j->spec.model_type);
    if (!(j->w = tn_gguf_writer_new())) return -1;
    if (plan_tensors(j) || add_metadata(j)) return -1;
    for (int i = 0; i < j->n; i++) {
        const tn_export_tensor *t = &j->t[i];
        int64_t ne[4];
        for (int d = 0; d < t->out_dims; d++) ne[d] = t->out_shape[t->out_dims - 1 - d];
        if (tn_gguf_add_tensor(j->w, t->name, t->type, t->out_dims, ne) < 0) return -1;
    }
    if (j->have_lora)
        for (int m = 0; m < j->lora.n; m++) {
            int found = 0;
            for (int i = 0; i < j->n && !found; i++) found = j->t[i].lora == m;
            if (!found)
                return tn_fail("%s: the adapter's LoRA on layer %d %s matches no tensor of the model", adapter_dir, j->lora.mods[m].layer,
                               tn_module_names[j->lora.mods[m].module]);
        }
    report_fallbacks(j);
    return tn_job_alloc_work(j);
}

static int fill_gguf(void *ctx, int i, void *buf, uint64_t n_bytes) {
    tn_export_job *j = ctx;
    const tn_export_tensor *t = &j->t[i];
    const float *v = tn_job_load(j, t, 1);
    if (!v) return -1;
    const int64_t ne0 = t->out_shape[t->out_dims - 1];
    int64_t rows = 1;
    for (int d = 0; d < t->out_dims - 1; d++) rows *= t->out_shape[d];
    uint64_t got = tn_quant_rows(t->type, v, buf, rows, ne0);
    if (got != n_bytes) return got ? tn_fail("internal: %llu bytes for %llu", (unsigned long long)got, (unsigned long long)n_bytes) : -1;
    j->bytes_out += n_bytes;
    double dt = tn_seconds() - j->t0;
    tn_progress_update(&j->progress, i + 1, "MiB/s", dt > 0 ? (double)j->bytes_out / (1 << 20) / dt : 0, t->name);
    return 0;
}

int tn_gguf_export_set_dequantized(tn_export_job *j, const char *dir) {
    if (tn_check_out_dir(dir) < 0) return -1;
    snprintf(j->dequant_dir, sizeof j->dequant_dir, "%s", dir);
    return 0;
}

/* Whether a GGUF tensor stands for its HF tensor in the dequantized copy:
 * not rope_freqs (no HF tensor), not the second half of a split gate / up
 * (the first half's entry holds the whole matrix: both halves have one type,
 * and quantization blocks lie within rows). */
static int in_hf_copy(const tn_export_tensor *t) { return t->src[0] && t->transform != TN_GGUF_SECOND_HALF; }

/* The dequantized copy: each weight in HF layout (row permutations commute
 * with quantization, whose blocks lie within rows), quantized to its GGUF
 * type and back. */
static int fill_dequantized(void *ctx, int i, void *buf, uint64_t n_bytes) {
    tn_export_job *j = ctx;
    const tn_export_tensor *t = NULL;
    for (int k = 0, seen = 0; k < j->n; k++)
        if (in_hf_copy(&j->t[k]) && seen++ == i) t = &j->t[k];
    const float *v = t ? tn_job_load(j, t, 0) : NULL;
    if (!v) return -1;
    const int64_t ne0 = t->shape[t->n_dims - 1];
    const int64_t rows = (int64_t)(n_bytes / 4) / ne0;
    uint64_t qbytes = (uint64_t)rows * tn_ggml_row_size(t->type, ne0);
    void *q = tn_malloc(qbytes ? qbytes : 1, "quantized tensor");
    if (!q) return -1;
    if (tn_quant_rows(t->type, v, q, rows, ne0) != qbytes) {
        free(q);
        return -1;
    }
#pragma omp parallel for schedule(static) if (rows > 64)
    for (int64_t r = 0; r < rows; r++)
        tn_dequantize_row(t->type, (const unsigned char *)q + (uint64_t)r * tn_ggml_row_size(t->type, ne0), (float *)buf + r * ne0, ne0);
    free(q);
    j->bytes_out += n_bytes;
    return 0;
}

static int write_dequantized(tn_export_job *j) {
    tn_tensor_desc *d = tn_calloc((size_t)j->n, sizeof *d, "tensor list");
    if (!d) return -1;
    int n = 0;
    for (int i = 0; i < j->n; i++) {
        const tn_export_tensor *t = &j->t[i];
        if (!in_hf_copy(t)) continue;
        d[n].name = t->src;
        d[n].dtype = TN_DTYPE_F32;
        d[n].n_dims = t->n_dims;
        for (int k = 0; k < t->n_dims; k++) d[n].shape[k] = t->shape[k];
        n++;
    }
    int rc = tn_job_write_hf(j, j->dequant_dir, d, n, fill_dequantized, TN_DTYPE_F32);
    free(d);
    if (!rc) fprintf(stderr, "tune: wrote %s: the GGUF's weights dequantized (F32, Hugging Face layout)\n", j->dequant_dir);
    return rc;
}

int tn_gguf_export_write(tn_export_job *j) {
    uint64_t total = 0;
    for (int i = 0; i < j->n; i++) total += tn_gguf_tensor_bytes(j->w, i);
    j->t0 = tn_seconds();
    tn_progress_start(&j->progress, "export", j->n);
    int rc = tn_gguf_write(j->w, j->out, fill_gguf, j);
    tn_progress_finish(&j->progress);
    if (rc) return -1;
    fprintf(stderr, "tune: wrote %s: %d tensors, %.2f MiB, %s (general.file_type %d) in %.1f s\n", j->out, j->n,
            (double)total / (1 << 20), tn_file_type_name(j->ftype), tn_file_type_id(j->ftype), tn_seconds() - j->t0);
    return j->dequant_dir[0] ? write_dequantized(j) : 0;
}
