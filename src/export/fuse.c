/* fuse.c - `tune fuse MODEL --adapter DIR --out DIR [--dtype]`: the
 * adapter merged into the weights, W' = W + scale·B·A computed in fp32 and
 * stored once rounded (to the model's dtype, tensor by tensor, or to
 * --dtype), as a Hugging Face folder transformers loads: config.json, the
 * tokenizer files and generation_config.json copied, model.safetensors or
 * shards of at most 5 GB (10^9 bytes each, as save_pretrained counts) with
 * model.safetensors.index.json.
 *
 * MLX-quantized bases (4-bit affine, mlx-community) are dequantized, then
 * fused: the output is a dense folder (config.json loses "quantization").
 *
 * The folder is written as "<out>.tmp.<pid>" and renamed into place when
 * complete; an existing <out> is replaced only when it holds nothing but
 * files a fuse writes (an earlier fuse), never a folder of other files.
 * tn_job_write_hf (here) writes such folders for the other jobs too. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "export/job.h"
#include "export/tensor_read.h"
#include "data/json_span.h"
#include "io/json.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/platform.h"

/* Files copied from the model folder when present. */
static const char *const copied[] = {
    "tokenizer.json",  "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model", "chat_template.jinja",
    "chat_template.json", "generation_config.json", "added_tokens.json",     "vocab.json",     "merges.txt",
    NULL,
};

/* Whether a file name is one a fuse writes. */
static int fuse_output_name(const char *n) {
    if (!strcmp(n, "config.json") || !strcmp(n, "model.safetensors.index.json")) return 1;
    for (int i = 0; copied[i]; i++)
        if (!strcmp(n, copied[i])) return 1;
    size_t len = strlen(n);
    return !strncmp(n, "model", 5) && len > 12 && !strcmp(n + len - 12, ".safetensors");
}

int tn_check_out_dir(const char *dir) {
    struct stat sb;
    if (stat(dir, &sb) != 0) return 1;
    if (!S_ISDIR(sb.st_mode)) return tn_fail("%s: exists and is not a folder (expected a new folder for the fused model)", dir);
    DIR *d = opendir(dir);
    if (!d) return tn_fail("%s: cannot read (%s)", dir, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (!fuse_output_name(e->d_name)) {
            rc = tn_fail("%s: exists and holds %s, which a fuse does not write (expected a new or empty folder, or an earlier fuse's "
                         "output)",
                         dir, e->d_name);
            break;
        }
    }
    closedir(d);
    return rc;
}

/* Removes a folder holding only files (ours). */
static void remove_flat_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[8400];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

int tn_fuse_prepare(tn_export_job **out, const char *model_dir, const char *adapter_dir, const char *out_dir, tn_dtype dtype,
                    uint64_t shard_bytes) {
    *out = NULL;
    tn_export_job *j = tn_calloc(1, sizeof *j, "fuse job");
    if (!j) return -1;
    j->kind = TN_JOB_FUSE;
    j->dtype = dtype;
    j->shard_bytes = shard_bytes;
    snprintf(j->out, sizeof j->out, "%s", out_dir);
    *out = j;
    if (!adapter_dir) return tn_fail("fuse needs --adapter DIR");
    if (tn_job_open_model(j, model_dir, adapter_dir, TN_STAGE_FUSE)) return -1;
    if (tn_check_out_dir(out_dir) < 0) return -1;
    for (int i = 0; i < j->st.n_tensors; i++) {
        const char *n = j->st.tensors[i].name;
        size_t len = strlen(n);
        if (j->spec.quant_bits && len > 7 && (!strcmp(n + len - 7, ".scales") || !strcmp(n + len - 7, ".biases"))) continue;
        /* mlx-lm's split experts are written back as the Hugging Face tensor */
        char hf[TN_EXPORT_NAME];
        int part;
        if (tn_alias_of(&j->spec, n, hf, sizeof hf, &part)) {
            if (part) continue;
            n = hf;
        }
        tn_export_tensor *t = tn_job_add(j);
        if (!t) return -1;
        snprintf(t->src, sizeof t->src, "%s", n);
        snprintf(t->name, sizeof t->name, "%s", n);
        t->n_dims = tn_tensor_logical_shape(&j->st, &j->spec, n, t->shape);
        t->lora = tn_job_lora_of(j, n);
        t->dtype = dtype == TN_DTYPE_COUNT ? tn_tensor_float_dtype(&j->st, &j->spec, n) : dtype;
        if (t->dtype != TN_DTYPE_F32 && t->dtype != TN_DTYPE_F16 && t->dtype != TN_DTYPE_BF16) t->dtype = TN_DTYPE_F32;
    }
    for (int m = 0; m < j->lora.n; m++) {
        int found = 0;
        for (int i = 0; i < j->n && !found; i++) found = j->t[i].lora == m;
        if (!found)
            return tn_fail("%s: the adapter's LoRA on layer %d %s matches no tensor of the model", adapter_dir, j->lora.mods[m].layer,
                           tn_module_names[j->lora.mods[m].module]);
    }
    j->desc = tn_calloc((size_t)j->n, sizeof *j->desc, "tensor list");
    if (!j->desc) return -1;
    for (int i = 0; i < j->n; i++) {
        tn_tensor_desc *d = &j->desc[i];
        d->name = j->t[i].name;
        d->dtype = j->t[i].dtype;
        d->n_dims = j->t[i].n_dims;
        for (int k = 0; k < d->n_dims; k++) d->shape[k] = j->t[i].shape[k];
    }
    return tn_job_alloc_work(j);
}

static int fill_fuse(void *ctx, int i, void *buf, uint64_t n_bytes) {
    tn_export_job *j = ctx;
    const tn_export_tensor *t = &j->t[i];
    const float *v = tn_job_load(j, t, 1);
    if (!v) return -1;
    int64_t n = 1;
    for (int d = 0; d < t->n_dims; d++) n *= t->shape[d];
    tn_ggml_type gt = t->dtype == TN_DTYPE_F16 ? TN_GGML_F16 : t->dtype == TN_DTYPE_BF16 ? TN_GGML_BF16 : TN_GGML_F32;
    if (tn_quant_rows(gt, v, buf, 1, n) != n_bytes) return tn_fail("internal: tensor %s size", t->name);
    j->bytes_out += n_bytes;
    double dt = tn_seconds() - j->t0;
    tn_progress_update(&j->progress, i + 1, "MiB/s", dt > 0 ? (double)j->bytes_out / (1 << 20) / dt : 0, t->name);
    return 0;
}

static const char *torch_name(tn_dtype d) { return d == TN_DTYPE_F16 ? "float16" : d == TN_DTYPE_BF16 ? "bfloat16" : "float32"; }

/* config.json as the base has it, edited in the text itself rather than
 * re-printed: cJSON keeps numbers as doubles, so a re-printed 30.0 would come
 * back as 30, which transformers' strict config classes refuse for a float
 * field (Gemma 2's final_logit_softcapping). Edits: the dtype when it changed,
 * and an MLX "quantization" (or "quantization_config") member removed, since
 * the fused folder is dense. */
/* The whole member whose value is `v`: from its key's opening quote to the
 * comma after the value (or, for the last member, from the comma before the
 * key), so that removing it leaves valid JSON. */
static tn_span member_extent(const char *text, size_t n, tn_span v) {
    size_t start = v.start, end = v.start + v.len;
    while (start > 0 && text[start - 1] != ':') start--; /* back to the colon */
    if (start > 0) start--;
    while (start > 0 && text[start] != '"') start--;     /* the key's closing quote */
    if (start > 0) start--;
    while (start > 0 && text[start] != '"') start--;     /* its opening quote */
    size_t after = end;
    while (after < n && (text[after] == ' ' || text[after] == '\t' || text[after] == '\r' || text[after] == '\n')) after++;
    if (after < n && text[after] == ',') {
        end = after + 1;
    } else { /* last member: take the comma before it */
        size_t before = start;
        while (before > 0 && text[before - 1] != ',' && text[before - 1] != '{') before--;
        if (before > 0 && text[before - 1] == ',') start = before - 1;
    }
    tn_span s = {start, end - start};
    return s;
}

static int write_config(tn_export_job *j, tn_dtype dtype) {
    char src[8400], dst[8400];
    snprintf(src, sizeof src, "%s/config.json", j->model_dir);
    snprintf(dst, sizeof dst, "%s/config.json", j->tmp_dir);
    size_t n = 0;
    char *text = tn_read_file(src, 64u << 20, &n);
    if (!text) return -1;
    cJSON *c = tn_json_parse(text, n, src);
    if (!c) {
        free(text);
        return -1;
    }
    int has_torch_dtype = cJSON_GetObjectItemCaseSensitive(c, "torch_dtype") != NULL;
    cJSON_Delete(c);
    struct {
        tn_span span;
        const char *with;
    } edits[3];
    int ne = 0;
    tn_span sp;
    if (!tn_json_member_span(text, n, "quantization", &sp)) edits[ne].span = member_extent(text, n, sp), edits[ne++].with = "";
    if (!tn_json_member_span(text, n, "quantization_config", &sp)) edits[ne].span = member_extent(text, n, sp), edits[ne++].with = "";
    char quoted[32];
    const char *dtype_key = has_torch_dtype ? "torch_dtype" : "dtype";
    if (dtype != TN_DTYPE_COUNT) {
        snprintf(quoted, sizeof quoted, "\"%s\"", torch_name(dtype));
        if (!tn_json_member_span(text, n, dtype_key, &sp)) edits[ne].span = sp, edits[ne++].with = quoted;
    }
    /* Apply the edits in text order. */
    for (int a = 0; a < ne; a++)
        for (int b = a + 1; b < ne; b++)
            if (edits[b].span.start < edits[a].span.start) {
                __typeof__(edits[0]) t = edits[a];
                edits[a] = edits[b], edits[b] = t;
            }
    size_t cap = n + 64 * (size_t)(ne + 1) + 64;
    char *out = tn_malloc(cap, "config.json");
    if (!out) {
        free(text);
        return -1;
    }
    size_t o = 0, at = 0;
    for (int e = 0; e < ne; e++) {
        memcpy(out + o, text + at, edits[e].span.start - at);
        o += edits[e].span.start - at;
        size_t wl = strlen(edits[e].with);
        memcpy(out + o, edits[e].with, wl);
        o += wl;
        at = edits[e].span.start + edits[e].span.len;
    }
    memcpy(out + o, text + at, n - at);
    o += n - at;
    /* A dtype that the base did not name at all is added before the last brace. */
    if (dtype != TN_DTYPE_COUNT && tn_json_member_span(text, n, dtype_key, &sp) == 1) {
        size_t close = o;
        while (close > 0 && out[close - 1] != '}') close--;
        if (close > 0) {
            char add[96];
            int al = snprintf(add, sizeof add, ",\n  \"torch_dtype\": \"%s\"\n}", torch_name(dtype));
            o = close - 1;
            memcpy(out + o, add, (size_t)al);
            o += (size_t)al;
        }
    }
    free(text);
    int rc = tn_write_file_atomic(dst, out, o);
    free(out);
    return rc;
}

static int copy_file(const char *src, const char *dst) {
    size_t n;
    char *data = tn_read_file(src, (size_t)4 << 30, &n);
    if (!data) return -1;
    int rc = tn_write_file_atomic(dst, data, n);
    free(data);
    return rc;
}

int tn_job_write_hf(tn_export_job *j, const char *out_dir, const tn_tensor_desc *desc, int n, tn_tensor_fill fill,
                    tn_dtype config_dtype) {
    snprintf(j->tmp_dir, sizeof j->tmp_dir, "%s.tmp.%ld", out_dir, (long)getpid());
    if (tn_make_dirs(j->tmp_dir) != 0) return -1;
    j->t0 = tn_seconds();
    j->bytes_out = 0;
    tn_progress_start(&j->progress, j->kind == TN_JOB_FUSE ? "fuse" : "dequantized copy", n);
    int rc = tn_safetensors_write(j->tmp_dir, "model", desc, n, j->shard_bytes ? j->shard_bytes : 5000000000ull, "{\"format\":\"pt\"}",
                                  fill, j);
    tn_progress_finish(&j->progress);
    if (!rc) rc = write_config(j, config_dtype);
    for (int i = 0; copied[i] && !rc; i++) {
        char src[8400], dst[8400];
        snprintf(src, sizeof src, "%s/%s", j->model_dir, copied[i]);
        snprintf(dst, sizeof dst, "%s/%s", j->tmp_dir, copied[i]);
        if (tn_file_exists(src)) rc = copy_file(src, dst);
    }
    if (rc) {
        remove_flat_dir(j->tmp_dir);
        return tn_fail_prefix("%s: nothing was written", out_dir);
    }
    /* Into place: an earlier output moves aside first, then goes. */
    char old[4300] = "";
    if (tn_check_out_dir(out_dir) == 0) {
        snprintf(old, sizeof old, "%s.old.%ld", out_dir, (long)getpid());
        if (rename(out_dir, old) != 0) {
            int e = errno;
            remove_flat_dir(j->tmp_dir);
            return tn_fail("%s: cannot move the earlier output aside (%s); nothing was written", out_dir, strerror(e));
        }
    }
    if (rename(j->tmp_dir, out_dir) != 0) {
        int e = errno;
        if (old[0]) rename(old, out_dir);
        remove_flat_dir(j->tmp_dir);
        return tn_fail("%s: cannot rename %s into place (%s); nothing was written", out_dir, j->tmp_dir, strerror(e));
    }
    if (old[0]) remove_flat_dir(old);
    return 0;
}

int tn_fuse_write(tn_export_job *j) {
    /* config.json names the stored dtype when it changed (--dtype, or an
     * MLX-quantized base now dense) */
    tn_dtype cd = j->dtype != TN_DTYPE_COUNT ? j->dtype : j->spec.quant_bits && j->n ? j->t[0].dtype : TN_DTYPE_COUNT;
    if (tn_job_write_hf(j, j->out, j->desc, j->n, fill_fuse, cd)) return -1;
    fprintf(stderr, "tune: fused %d LoRA modules (rank %d, scale %g) into %s: %d tensors, %.2f MiB, in %.1f s\n", j->lora.n, j->lora.rank,
            (double)j->lora.scale, j->out, j->n, (double)j->bytes_out / (1 << 20), tn_seconds() - j->t0);
    return 0;
}
