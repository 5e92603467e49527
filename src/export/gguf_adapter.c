/* gguf_adapter.c - `tune export MODEL --adapter DIR --gguf-adapter OUT`: a
 * LoRA adapter as llama.cpp loads it (llama-adapter.cpp;
 * convert_lora_to_gguf.py writes the same): general.type "adapter",
 * adapter.type "lora", adapter.lora.alpha, general.architecture the base's;
 * per adapted matrix "<GGUF name>.lora_a" = A [r, in] and ".lora_b" =
 * B [out, r] as PEFT stores them (F32), the rows of B permuted for Q and K
 * where the model's GGUF permutes them. llama.cpp applies
 * y = W x + scale·(alpha / r)·B(A x), so alpha is written as scale·r: the
 * same product for PEFT (alpha / r, alpha / sqrt(r) with rsLoRA) and
 * mlx-lm (a raw scale) adapters. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export/job.h"
#include "util/error.h"
#include "util/platform.h"

/* The GGUF tensors of a LoRA module's weight, and their transforms: one,
 * or two for a fused gate+up matrix split by rows (Granite hybrid's
 * shared_mlp.input_linear: A repeated, B split). Returns the count. */
static int module_names(const tn_export_job *j, const tn_lora_module *m, char gguf[2][TN_EXPORT_NAME - 8], tn_gguf_transform tr[2]) {
    const tn_family *f = j->spec.family;
    char hf[TN_EXPORT_NAME], cand[TN_EXPORT_NAME];
    hf[0] = 0;
    for (const tn_tensor_rule *r = f->layer_rules; r->name; r++)
        if (r->lora && !strcmp(r->lora, tn_module_names[m->module])) {
            snprintf(hf, sizeof hf, r->name, m->layer);
            break;
        }
    int n = 0;
    for (const tn_gguf_name *g = f->gguf_layer; hf[0] && g->hf && n < 2; g++) {
        if (!TN_GGUF_NAME_APPLIES(g, &j->spec)) continue;
        snprintf(cand, sizeof cand, g->hf, m->layer);
        if (strcmp(cand, hf)) continue;
        snprintf(gguf[n], TN_EXPORT_NAME - 8, g->gguf, m->layer);
        tr[n++] = g->transform;
    }
    if (!n) return tn_fail("%s: no GGUF tensor for the LoRA on layer %d %s", j->model_dir, m->layer, tn_module_names[m->module]);
    return n;
}

int tn_gguf_adapter_prepare(tn_export_job **out, const char *model_dir, const char *adapter_dir, const char *out_path) {
    *out = NULL;
    tn_export_job *j = tn_calloc(1, sizeof *j, "export job");
    if (!j) return -1;
    j->kind = TN_JOB_GGUF_ADAPTER;
    snprintf(j->out, sizeof j->out, "%s", out_path);
    *out = j;
    if (!adapter_dir) return tn_fail("--gguf-adapter needs --adapter DIR");
    if (tn_job_open_model(j, model_dir, adapter_dir, TN_STAGE_GGUF)) return -1;
    if (!j->spec.family->gguf_layer) return tn_fail("%s: GGUF export of %s models is not implemented", model_dir, j->spec.model_type);
    if (!(j->w = tn_gguf_writer_new())) return -1;
    const char *base = strrchr(adapter_dir, '/');
    tn_gguf_writer *w = j->w;
    if (tn_gguf_set_str(w, "general.architecture", j->spec.family->gguf_arch) || tn_gguf_set_str(w, "general.type", "adapter") ||
        tn_gguf_set_str(w, "general.name", base && base[1] ? base + 1 : adapter_dir) || tn_gguf_set_str(w, "adapter.type", "lora") ||
        tn_gguf_set_f32(w, "adapter.lora.alpha", j->lora.scale * (float)j->lora.rank))
        return -1;
    for (int m = 0; m < j->lora.n; m++) {
        const tn_lora_module *mod = &j->lora.mods[m];
        char gname[2][TN_EXPORT_NAME - 8];
        tn_gguf_transform tr[2] = {TN_GGUF_COPY, TN_GGUF_COPY};
        int nn = module_names(j, mod, gname, tr);
        if (nn < 0) return -1;
        for (int k = 0; k < nn; k++)
            for (int part = 0; part < 2; part++) {
                tn_export_tensor *t = tn_job_add(j);
                if (!t) return -1;
                snprintf(t->name, sizeof t->name, "%.240s.lora_%c", gname[k], part ? 'b' : 'a');
                snprintf(t->src, sizeof t->src, "%s", t->name);
                t->lora = m;
                t->lora_part = part;
                t->n_dims = 2;
                t->shape[0] = part ? mod->out : j->lora.rank;
                t->shape[1] = part ? j->lora.rank : mod->in;
                /* B's rows follow the weight's (permuted or split); A is the same for every part */
                t->transform = part && (tr[k] == TN_GGUF_PERMUTE_Q || tr[k] == TN_GGUF_PERMUTE_K || tr[k] == TN_GGUF_FIRST_HALF ||
                                        tr[k] == TN_GGUF_SECOND_HALF)
                                   ? tr[k]
                                   : TN_GGUF_COPY;
                if (tn_job_out_shape(j, t)) return -1;
                t->type = t->wanted = TN_GGML_F32;
                int64_t ne[2] = {t->out_shape[1], t->out_shape[0]};
                if (tn_gguf_add_tensor(w, t->name, TN_GGML_F32, 2, ne) < 0) return -1;
            }
    }
    return tn_job_alloc_work(j);
}

static int fill_adapter(void *ctx, int i, void *buf, uint64_t n_bytes) {
    tn_export_job *j = ctx;
    const float *v = tn_job_load(j, &j->t[i], 1);
    if (!v) return -1;
    memcpy(buf, v, n_bytes);
    return 0;
}

int tn_gguf_adapter_write(tn_export_job *j) {
    j->t0 = tn_seconds();
    if (tn_gguf_write(j->w, j->out, fill_adapter, j)) return -1;
    fprintf(stderr, "tune: wrote %s: LoRA adapter, %d matrices of rank %d on %d modules, alpha %g (scale %g)\n", j->out, j->n,
            j->lora.rank, j->lora.n, (double)(j->lora.scale * (float)j->lora.rank), (double)j->lora.scale);
    return 0;
}
