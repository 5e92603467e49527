#include "io/safetensors_write.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/json.h"
#include "util/atomic_file.h"
#include "util/error.h"

static uint64_t tensor_bytes(const tn_tensor_desc *t) {
    uint64_t n = tn_dtype_size(t->dtype);
    for (int d = 0; d < t->n_dims; d++) n *= (uint64_t)t->shape[d];
    return n;
}

/* Writes tensors [first, last) as one file. */
static int write_file(const char *path, const tn_tensor_desc *t, int first, int last, const char *metadata_json, tn_tensor_fill fill,
                      void *ctx) {
    cJSON *h = cJSON_CreateObject();
    if (metadata_json) {
        cJSON *m = cJSON_Parse(metadata_json);
        if (m) cJSON_AddItemToObject(h, "__metadata__", m);
    }
    uint64_t off = 0, biggest = 0;
    for (int i = first; i < last; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "dtype", tn_dtype_name(t[i].dtype));
        cJSON *shape = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < t[i].n_dims; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t[i].shape[d]));
        uint64_t nb = tensor_bytes(&t[i]);
        cJSON *offs = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + nb)));
        cJSON_AddItemToObject(h, t[i].name, e);
        off += nb;
        if (nb > biggest) biggest = nb;
    }
    char *text = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    if (!text) return tn_fail("%s: out of memory building the header", path);
    /* The header is padded with spaces so the data starts 8-byte aligned. */
    size_t len = strlen(text), padded = (len + 7) / 8 * 8;
    unsigned char lenbuf[8];
    for (int k = 0; k < 8; k++) lenbuf[k] = (unsigned char)((uint64_t)padded >> (8 * k));
    tn_atomic_file af;
    if (tn_atomic_open(&af, path) != 0) {
        free(text);
        return -1;
    }
    tn_atomic_write(&af, lenbuf, 8);
    tn_atomic_write(&af, text, len);
    tn_atomic_write(&af, "        ", padded - len);
    free(text);
    void *buf = biggest ? malloc(biggest) : NULL;
    if (biggest && !buf) {
        tn_atomic_abort(&af);
        return tn_fail("%s: out of memory (%llu bytes for one tensor)", path, (unsigned long long)biggest);
    }
    for (int i = first; i < last; i++) {
        uint64_t nb = tensor_bytes(&t[i]);
        if (fill(ctx, i, buf, nb) != 0 || tn_atomic_write(&af, buf, nb) != 0) {
            free(buf);
            tn_atomic_abort(&af);
            return tn_fail_prefix("%s: tensor %s", path, t[i].name);
        }
    }
    free(buf);
    return tn_atomic_commit(&af);
}

int tn_safetensors_write(const char *dir, const char *base, const tn_tensor_desc *t, int n, uint64_t shard_bytes,
                         const char *metadata_json, tn_tensor_fill fill, void *ctx) {
    uint64_t total = 0;
    for (int i = 0; i < n; i++) total += tensor_bytes(&t[i]);
    char path[4096];
    if (total <= shard_bytes) {
        snprintf(path, sizeof path, "%s/%s.safetensors", dir, base);
        return write_file(path, t, 0, n, metadata_json, fill, ctx);
    }
    /* Greedy shards in tensor order, as transformers' save_pretrained does. */
    int *shard_of = calloc((size_t)n, sizeof *shard_of);
    if (!shard_of) return tn_fail("out of memory");
    int shards = 0;
    uint64_t cur = 0;
    for (int i = 0; i < n; i++) {
        uint64_t nb = tensor_bytes(&t[i]);
        if (i == 0 || (cur + nb > shard_bytes && cur > 0)) {
            shards++;
            cur = 0;
        }
        cur += nb;
        shard_of[i] = shards - 1;
    }
    cJSON *index = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(index, "metadata");
    cJSON_AddNumberToObject(meta, "total_size", (double)total);
    cJSON *map = cJSON_AddObjectToObject(index, "weight_map");
    int rc = 0;
    for (int s = 0, first = 0; s < shards && rc == 0; s++) {
        int last = first;
        while (last < n && shard_of[last] == s) last++;
        char fname[256];
        snprintf(fname, sizeof fname, "%s-%05d-of-%05d.safetensors", base, s + 1, shards);
        snprintf(path, sizeof path, "%s/%s", dir, fname);
        rc = write_file(path, t, first, last, metadata_json, fill, ctx);
        for (int i = first; i < last; i++) cJSON_AddStringToObject(map, t[i].name, fname);
        first = last;
    }
    free(shard_of);
    if (rc == 0) {
        char *text = cJSON_Print(index);
        snprintf(path, sizeof path, "%s/%s.safetensors.index.json", dir, base);
        rc = text ? tn_write_file_atomic(path, text, strlen(text)) : tn_fail("out of memory");
        free(text);
    }
    cJSON_Delete(index);
    return rc;
}
