#include "train/adapter.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/json.h"
#include "io/safetensors_write.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/platform.h"



typedef struct {
    const tn_lora *lora;
    char (*names)[160];
} save_ctx;

static int fill(void *vctx, int i, void *buf, uint64_t n_bytes) {
    save_ctx *c = vctx;
    const tn_lora_module *mod = &c->lora->mods[i / 2];
    memcpy(buf, (i % 2) ? mod->b : mod->a, n_bytes);
    return 0;
}

int tn_adapter_save(const tn_lora *lora, const tn_model *m, const char *dir, const char *base_model) {
    if (tn_make_dirs(dir) != 0) return -1;
    int n = lora->n * 2;
    tn_tensor_desc *d = tn_calloc((size_t)n, sizeof *d, "adapter tensors");
    char(*names)[160] = tn_calloc((size_t)n, sizeof *names, "adapter names");
    if (!d || !names) {
        free(d), free(names);
        return -1;
    }
    for (int i = 0; i < lora->n; i++) {
        const tn_lora_module *mod = &lora->mods[i];
        for (int k = 0; k < 2; k++) {
            snprintf(names[2 * i + k], sizeof names[0], "base_model.model.model.layers.%d.%s.lora_%c.weight", mod->layer,
                     tn_module_paths[mod->module], k ? 'B' : 'A');
            tn_tensor_desc *t = &d[2 * i + k];
            t->name = names[2 * i + k];
            t->dtype = TN_DTYPE_F32;
            t->n_dims = 2;
            t->shape[0] = k ? mod->out : lora->rank;
            t->shape[1] = k ? lora->rank : mod->in;
        }
    }
    save_ctx c = {lora, names};
    int rc = tn_safetensors_write(dir, "adapter_model", d, n, UINT64_MAX, "{\"format\":\"pt\"}", fill, &c);
    free(d);
    free(names);
    if (rc) return rc;
    cJSON *cfg = cJSON_CreateObject();
    /* A GGUF base: the GGUF file, not the temporary folder it is read through. */
    const char *gguf = tn_model_gguf_base(m, NULL);
    cJSON_AddStringToObject(cfg, "base_model_name_or_path", gguf ? gguf : base_model ? base_model : m->path);
    cJSON_AddStringToObject(cfg, "bias", "none");
    cJSON_AddBoolToObject(cfg, "fan_in_fan_out", 0);
    cJSON_AddBoolToObject(cfg, "inference_mode", 1);
    cJSON_AddBoolToObject(cfg, "init_lora_weights", 1);
    if (lora->first_layer > 0) {
        cJSON *ls = cJSON_AddArrayToObject(cfg, "layers_to_transform");
        for (int l = lora->first_layer; l < m->spec.n_layers; l++) cJSON_AddItemToArray(ls, cJSON_CreateNumber(l));
    } else {
        cJSON_AddNullToObject(cfg, "layers_to_transform");
    }
    cJSON_AddNumberToObject(cfg, "lora_alpha", lora->alpha);
    cJSON_AddNumberToObject(cfg, "lora_dropout", lora->dropout);
    cJSON_AddStringToObject(cfg, "peft_type", "LORA");
    cJSON_AddNumberToObject(cfg, "r", lora->rank);
    cJSON *tm = cJSON_AddArrayToObject(cfg, "target_modules");
    for (int k = 0; k < TN_MOD_COUNT; k++)
        for (int i = 0; i < lora->n; i++)
            if (lora->mods[i].module == (tn_module)k) {
                /* PEFT matches by suffix: the shared MLP's names need their
                 * parent (block_sparse_moe has modules of the same name). */
                cJSON_AddItemToArray(tm, cJSON_CreateString(k == TN_MOD_INPUT_LINEAR || k == TN_MOD_OUTPUT_LINEAR ? tn_module_paths[k]
                                                                                                                   : tn_module_names[k]));
                break;
            }
    cJSON_AddStringToObject(cfg, "task_type", "CAUSAL_LM");
    cJSON_AddBoolToObject(cfg, "use_dora", 0);
    cJSON_AddBoolToObject(cfg, "use_rslora", lora->rslora);
    char *text = cJSON_Print(cfg);
    cJSON_Delete(cfg);
    char path[4200];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    rc = text ? tn_write_file_atomic(path, text, strlen(text)) : tn_fail("out of memory");
    free(text);
    return rc;
}

/* Finds module and layer in a tensor name "...layers.N.<path>.lora_X..." */
static int parse_key(const char *key, int *layer, int *module, int *is_b, int *mlx) {
    const char *p = strstr(key, "layers.");
    if (!p) return -1;
    char *end;
    long l = strtol(p + 7, &end, 10);
    if (end == p + 7 || *end != '.') return -1;
    *layer = (int)l;
    *module = -1;
    for (int k = 0; k < TN_MOD_COUNT; k++) {
        size_t n = strlen(tn_module_paths[k]);
        if (!strncmp(end + 1, tn_module_paths[k], n) && end[1 + n] == '.') {
            *module = k;
            const char *rest = end + 1 + n + 1;
            if (!strcmp(rest, "lora_A.weight")) *is_b = 0, *mlx = 0;
            else if (!strcmp(rest, "lora_B.weight")) *is_b = 1, *mlx = 0;
            else if (!strcmp(rest, "lora_a")) *is_b = 0, *mlx = 1;
            else if (!strcmp(rest, "lora_b")) *is_b = 1, *mlx = 1;
            else return -1;
            return 0;
        }
    }
    return -1;
}

int tn_adapter_load(tn_lora *lora, const tn_model *m, const char *dir) {
    char path[4200];
    memset(lora, 0, sizeof *lora);
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    cJSON *cfg = tn_json_parse_file(path, 1u << 20);
    if (!cfg) return -1;
    int rc = -1;
    tn_safetensors st;
    memset(&st, 0, sizeof st);
    int64_t rank = 0;
    double alpha = 0, dropout = 0;
    int rslora = 0, layers = -1, is_mlx = 0;
    tn_targets targets = {0};
    const cJSON *lp = cJSON_GetObjectItemCaseSensitive(cfg, "lora_parameters");
    if (cJSON_IsObject(lp)) { /* mlx-lm */
        is_mlx = 1;
        double scale = 20;
        int64_t nl = -1;
        if (tn_json_int(lp, "rank", path, &rank) || tn_json_opt_num(lp, "scale", path, &scale) < 0 ||
            tn_json_opt_num(lp, "dropout", path, &dropout) < 0 || tn_json_opt_int(cfg, "num_layers", path, &nl) < 0)
            goto done;
        alpha = scale * (double)rank;
        layers = (int)nl;
    } else {
        int64_t l0 = -1;
        if (tn_json_int(cfg, "r", path, &rank) || tn_json_num(cfg, "lora_alpha", path, &alpha) ||
            tn_json_opt_num(cfg, "lora_dropout", path, &dropout) < 0 || tn_json_opt_bool(cfg, "use_rslora", path, &rslora) < 0)
            goto done;
        const cJSON *ltt = cJSON_GetObjectItemCaseSensitive(cfg, "layers_to_transform");
        if (cJSON_IsArray(ltt) && cJSON_GetArraySize(ltt) > 0) {
            const cJSON *it = cJSON_GetArrayItem(ltt, 0);
            if (tn_json_as_int(it, "layers_to_transform[0]", path, 0, m->spec.n_layers - 1, &l0)) goto done;
            layers = (int)(m->spec.n_layers - l0);
        }
        int dora = 0;
        tn_json_opt_bool(cfg, "use_dora", path, &dora);
        if (dora) {
            tn_fail("%s: use_dora is true: DoRA adapters are not supported in this build", path);
            goto done;
        }
    }
    if (rank <= 0 || rank > 4096) {
        tn_fail("%s: rank %lld out of range", path, (long long)rank);
        goto done;
    }
    snprintf(path, sizeof path, "%s/%s", dir, is_mlx ? "adapters.safetensors" : "adapter_model.safetensors");
    if (tn_safetensors_open(path, &st) != 0) goto done;
    /* Targets and layers from the tensors themselves. */
    int present[TN_MOD_COUNT] = {0}, min_layer = (int)m->spec.n_layers;
    for (int i = 0; i < st.n_tensors; i++) {
        int l, k, b, mx;
        if (parse_key(st.tensors[i].name, &l, &k, &b, &mx) != 0 || l < 0 || l >= m->spec.n_layers) {
            tn_fail("%s: tensor %s is not a LoRA matrix of a %s model's adaptable projections", path, st.tensors[i].name,
                    m->spec.model_type);
            goto done;
        }
        present[k] = 1;
        if (l < min_layer) min_layer = l;
    }
    for (int k = 0; k < TN_MOD_COUNT; k++)
        if (present[k]) targets.names[targets.n++] = tn_module_names[k];
    if (layers < 0 && min_layer > 0) layers = (int)m->spec.n_layers - min_layer;
    if (tn_lora_init(lora, m, &targets, (int)rank, alpha, rslora, dropout, layers, 0) != 0) goto done;
    int loaded = 0;
    for (int i = 0; i < st.n_tensors; i++) {
        const tn_tensor_info *t = &st.tensors[i];
        int l, k, b, mx;
        parse_key(t->name, &l, &k, &b, &mx);
        int idx = lora->index[l * TN_MOD_COUNT + k];
        if (idx < 0) {
            tn_fail("%s: tensor %s is outside the adapted layers", path, t->name);
            goto done;
        }
        tn_lora_module *mod = &lora->mods[idx];
        int64_t rows = b ? mod->out : rank, cols = b ? rank : mod->in;
        if (mx) { /* mlx stores the transposes */
            int64_t tmp = rows;
            rows = cols, cols = tmp;
        }
        if (t->n_dims != 2 || t->shape[0] != rows || t->shape[1] != cols) {
            char sb[64];
            tn_fail("%s: tensor %s has shape %s, expected [%lld, %lld] for this model (an adapter for another base?)", path, t->name,
                    tn_shape_string(t->shape, t->n_dims, sb, sizeof sb), (long long)rows, (long long)cols);
            goto done;
        }
        float *dst = b ? mod->b : mod->a;
        const unsigned char *src = tn_safetensors_data(&st, t);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++) {
                int64_t e = r * cols + c;
                float v;
                if (t->dtype == TN_DTYPE_F32) memcpy(&v, src + 4 * e, 4);
                else if (t->dtype == TN_DTYPE_BF16) v = tn_bf16_to_f32((uint16_t)(src[2 * e] | src[2 * e + 1] << 8));
                else if (t->dtype == TN_DTYPE_F16) v = tn_f16_to_f32((uint16_t)(src[2 * e] | src[2 * e + 1] << 8));
                else {
                    tn_fail("%s: tensor %s: dtype %s is not a float type", path, t->name, tn_dtype_name(t->dtype));
                    goto done;
                }
                if (mx) dst[c * rows + r] = v;
                else dst[e] = v;
            }
        loaded++;
    }
    if (loaded != 2 * lora->n) {
        tn_fail("%s: %d LoRA matrices for %d adapted modules (each needs A and B)", path, loaded, lora->n);
        goto done;
    }
    rc = 0;
done:
    if (rc) tn_lora_free(lora);
    tn_safetensors_close(&st);
    cJSON_Delete(cfg);
    return rc;
}
