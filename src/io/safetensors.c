#define _POSIX_C_SOURCE 200809L
#include "io/safetensors.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/json.h"
#include "util/error.h"

const char *tn_shape_string(const int64_t *shape, int n_dims, char *buf, int cap) {
    int n = snprintf(buf, (size_t)cap, "[");
    for (int i = 0; i < n_dims && n < cap; i++)
        n += snprintf(buf + n, (size_t)(cap - n), "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < cap) snprintf(buf + n, (size_t)(cap - n), "]");
    return buf;
}

static uint64_t read_u64_le(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static int parse_tensor_entry(const char *path, const cJSON *entry, uint64_t data_size,
                              uint64_t data_start, int file_index, tn_tensor_info *t) {
    const char *name = entry->string;
    if (!cJSON_IsObject(entry))
        return tn_fail("%s: tensor '%s': expected an object, got %s", path, name,
                       tn_json_type_name(entry));
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(entry, "dtype");
    if (!cJSON_IsString(dt))
        return tn_fail("%s: tensor '%s': field 'dtype': expected a string, got %s", path, name,
                       tn_json_type_name(dt));
    int dtype = tn_dtype_from_name(dt->valuestring);
    if (dtype < 0)
        return tn_fail("%s: tensor '%s': unknown dtype '%s' (expected F32, F16, BF16, F64, I64, "
                       "I32, I16, I8, U64, U32, U16, U8 or BOOL)",
                       path, name, dt->valuestring);
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(entry, "shape");
    if (!cJSON_IsArray(shape))
        return tn_fail("%s: tensor '%s': field 'shape': expected an array, got %s", path, name,
                       tn_json_type_name(shape));
    int n_dims = cJSON_GetArraySize(shape);
    if (n_dims > TN_MAX_DIMS)
        return tn_fail("%s: tensor '%s': %d dimensions, at most %d supported", path, name, n_dims,
                       TN_MAX_DIMS);
    /* Count elements with overflow checks: a hostile header must not wrap. */
    uint64_t count = 1;
    int overflow = 0;
    int d = 0;
    const cJSON *dim;
    cJSON_ArrayForEach(dim, shape) {
        int64_t v;
        char what[64];
        snprintf(what, sizeof what, "tensor '%s': shape[%d]", name, d);
        if (tn_json_as_int(dim, what, path, 0, INT64_MAX / 2, &v) != 0) return -1;
        t->shape[d++] = v;
        if (v != 0 && count > UINT64_MAX / (uint64_t)v) overflow = 1;
        else count *= (uint64_t)v;
    }
    size_t esize = tn_dtype_size((tn_dtype)dtype);
    if (overflow || count > UINT64_MAX / esize)
        return tn_fail("%s: tensor '%s': shape too large", path, name);
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(entry, "data_offsets");
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return tn_fail("%s: tensor '%s': field 'data_offsets': expected [begin, end], got %s",
                       path, name, tn_json_type_name(offs));
    int64_t begin, end;
    if (tn_json_as_int(cJSON_GetArrayItem(offs, 0), "data_offsets[0]", path, 0, INT64_MAX / 2, &begin) ||
        tn_json_as_int(cJSON_GetArrayItem(offs, 1), "data_offsets[1]", path, 0, INT64_MAX / 2, &end))
        return tn_fail_prefix("tensor '%s'", name);
    if (end < begin)
        return tn_fail("%s: tensor '%s': data_offsets [%lld, %lld] end before begin", path, name,
                       (long long)begin, (long long)end);
    if ((uint64_t)end > data_size)
        return tn_fail("%s: tensor '%s': data_offsets end %lld is past the end of the data "
                       "(%llu bytes; the file is truncated or the header is wrong)",
                       path, name, (long long)end, (unsigned long long)data_size);
    uint64_t nbytes = count * esize;
    if ((uint64_t)(end - begin) != nbytes) {
        char sb[128];
        return tn_fail("%s: tensor '%s': shape %s of %s needs %llu bytes, data_offsets give %lld",
                       path, name, tn_shape_string(t->shape, n_dims, sb, sizeof sb),
                       dt->valuestring, (unsigned long long)nbytes, (long long)(end - begin));
    }
    t->name = tn_strdup(name);
    if (!t->name) return -1;
    t->dtype = (tn_dtype)dtype;
    t->n_dims = n_dims;
    t->n_elements = count;
    t->n_bytes = nbytes;
    t->data_offset = data_start + (uint64_t)begin;
    t->file = file_index;
    return 0;
}

static int compare_by_offset(const void *a, const void *b) {
    const tn_tensor_info *x = a, *y = b;
    if (x->file != y->file) return x->file < y->file ? -1 : 1;
    if (x->data_offset != y->data_offset) return x->data_offset < y->data_offset ? -1 : 1;
    return x->n_bytes < y->n_bytes ? -1 : x->n_bytes > y->n_bytes;
}

static int compare_by_name(const void *a, const void *b) {
    return strcmp(((const tn_tensor_info *)a)->name, ((const tn_tensor_info *)b)->name);
}

/* Parses the header of file `fi` (already mapped) and appends its tensors. */
static int read_header(tn_safetensors *st, int fi, int *cap) {
    const char *path = st->paths[fi];
    const tn_mapped_file *m = &st->files[fi];
    if (m->size < 8)
        return tn_fail("%s: %zu bytes, too short for a safetensors file (expected an 8-byte "
                       "header length)", path, m->size);
    uint64_t n = read_u64_le(m->data);
    if (n > TN_SAFETENSORS_MAX_HEADER)
        return tn_fail("%s: header length %llu is not sane (at most %u bytes expected)", path,
                       (unsigned long long)n, TN_SAFETENSORS_MAX_HEADER);
    if (n > m->size - 8)
        return tn_fail("%s: header length %llu runs past the end of the file (%zu bytes)", path,
                       (unsigned long long)n, m->size);
    cJSON *root = tn_json_parse((const char *)m->data + 8, (size_t)n, path);
    if (!root) return tn_fail_prefix("header");
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return tn_fail("%s: header: expected a JSON object, got %s", path, tn_json_type_name(root));
    }
    uint64_t data_start = 8 + n;
    uint64_t data_size = m->size - data_start;
    int first = st->n_tensors;
    const cJSON *entry;
    int rc = 0;
    cJSON_ArrayForEach(entry, root) {
        if (!strcmp(entry->string, "__metadata__")) {
            const cJSON *kv;
            if (!cJSON_IsObject(entry)) {
                rc = tn_fail("%s: __metadata__: expected an object of strings", path);
                break;
            }
            cJSON_ArrayForEach(kv, entry) if (!cJSON_IsString(kv)) {
                rc = tn_fail("%s: __metadata__ '%s': expected a string, got %s", path, kv->string,
                             tn_json_type_name(kv));
                break;
            }
            if (rc) break;
            continue;
        }
        if (st->n_tensors == *cap) {
            int nc = *cap ? *cap * 2 : 256;
            tn_tensor_info *nt = realloc(st->tensors, (size_t)nc * sizeof *nt);
            if (!nt) {
                rc = tn_fail("out of memory reading %s", path);
                break;
            }
            st->tensors = nt;
            *cap = nc;
        }
        tn_tensor_info *t = &st->tensors[st->n_tensors];
        memset(t, 0, sizeof *t);
        if (parse_tensor_entry(path, entry, data_size, data_start, fi, t) != 0) {
            rc = -1;
            break;
        }
        st->n_tensors++;
        st->total_bytes += t->n_bytes;
    }
    cJSON_Delete(root);
    if (rc) return rc;
    /* No two tensors of this file may share bytes. */
    int count = st->n_tensors - first;
    qsort(st->tensors + first, (size_t)count, sizeof *st->tensors, compare_by_offset);
    for (int i = first + 1; i < st->n_tensors; i++) {
        const tn_tensor_info *a = &st->tensors[i - 1], *b = &st->tensors[i];
        if (b->data_offset < a->data_offset + a->n_bytes)
            return tn_fail("%s: tensors '%s' and '%s' overlap (bytes %llu..%llu and %llu..%llu of "
                           "the data)", path, a->name, b->name,
                           (unsigned long long)(a->data_offset - data_start),
                           (unsigned long long)(a->data_offset - data_start + a->n_bytes),
                           (unsigned long long)(b->data_offset - data_start),
                           (unsigned long long)(b->data_offset - data_start + b->n_bytes));
    }
    return 0;
}

static int add_file(tn_safetensors *st, const char *path) {
    char **np = realloc(st->paths, (size_t)(st->n_files + 1) * sizeof *np);
    if (!np) return tn_fail("out of memory");
    st->paths = np;
    tn_mapped_file *nf = realloc(st->files, (size_t)(st->n_files + 1) * sizeof *nf);
    if (!nf) return tn_fail("out of memory");
    st->files = nf;
    st->paths[st->n_files] = tn_strdup(path);
    st->files[st->n_files].data = NULL;
    st->files[st->n_files].size = 0;
    st->n_files++;
    if (!st->paths[st->n_files - 1]) return -1;
    return tn_map_file(path, &st->files[st->n_files - 1]);
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* Opens the shards named by an index file and checks the weight map against
 * what the shards hold. */
static int open_index(tn_safetensors *st, const char *index_path) {
    cJSON *root = tn_json_parse_file(index_path, 64u * 1024 * 1024);
    if (!root) return -1;
    int rc = 0;
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(map)) {
        rc = tn_fail("%s: field 'weight_map': expected an object, got %s", index_path,
                     tn_json_type_name(map));
        goto done;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", index_path);
    char *slash = strrchr(dir, '/');
    if (slash) slash[1] = 0;
    else dir[0] = 0;
    const cJSON *kv;
    int cap = 0;
    cJSON_ArrayForEach(kv, map) {
        if (!cJSON_IsString(kv)) {
            rc = tn_fail("%s: weight_map '%s': expected a file name, got %s", index_path, kv->string,
                         tn_json_type_name(kv));
            goto done;
        }
        if (strchr(kv->valuestring, '/')) {
            rc = tn_fail("%s: weight_map '%s': shard '%s' is not a plain file name", index_path,
                         kv->string, kv->valuestring);
            goto done;
        }
        char shard[4096];
        snprintf(shard, sizeof shard, "%s%s", dir, kv->valuestring);
        int known = 0;
        for (int i = 0; i < st->n_files; i++) known |= !strcmp(st->paths[i], shard);
        if (!known) {
            if (!tn_file_exists(shard)) {
                rc = tn_fail("%s: shard '%s' (holding '%s') is missing", index_path, kv->valuestring,
                             kv->string);
                goto done;
            }
            if (add_file(st, shard) != 0 || read_header(st, st->n_files - 1, &cap) != 0) {
                rc = -1;
                goto done;
            }
        }
    }
    /* Every tensor of the map must be in the shard the map names, and every
     * tensor of the shards must be in the map. */
    qsort(st->tensors, (size_t)st->n_tensors, sizeof *st->tensors, compare_by_name);
    cJSON_ArrayForEach(kv, map) {
        const tn_tensor_info *t = tn_safetensors_find(st, kv->string);
        if (!t || !ends_with(st->paths[t->file], kv->valuestring)) {
            rc = tn_fail("%s: tensor '%s' is listed in shard '%s' but not found there", index_path,
                         kv->string, kv->valuestring);
            goto done;
        }
    }
    for (int i = 0; i < st->n_tensors; i++)
        if (!cJSON_GetObjectItemCaseSensitive(map, st->tensors[i].name)) {
            rc = tn_fail("%s: tensor '%s' is in %s but not in the index's weight_map", index_path,
                         st->tensors[i].name, st->paths[st->tensors[i].file]);
            goto done;
        }
done:
    cJSON_Delete(root);
    return rc;
}

static int find_in_directory(const char *dir, char *out, size_t cap) {
    snprintf(out, cap, "%s/model.safetensors.index.json", dir);
    if (tn_file_exists(out)) return 0;
    snprintf(out, cap, "%s/model.safetensors", dir);
    if (tn_file_exists(out)) return 0;
    DIR *d = opendir(dir);
    if (!d) return tn_fail("%s: cannot open folder", dir);
    int found = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (ends_with(e->d_name, ".safetensors") && strcmp(e->d_name, "adapter_model.safetensors")) {
            found++;
            snprintf(out, cap, "%s/%s", dir, e->d_name);
        }
    }
    closedir(d);
    if (found == 1) return 0;
    if (found == 0) return tn_fail("%s: no model.safetensors or model.safetensors.index.json", dir);
    return tn_fail("%s: %d .safetensors files and no model.safetensors.index.json to say how they "
                   "fit together", dir, found);
}

int tn_safetensors_open(const char *path, tn_safetensors *st) {
    memset(st, 0, sizeof *st);
    char resolved[4096];
    if (tn_is_directory(path)) {
        if (find_in_directory(path, resolved, sizeof resolved) != 0) return -1;
    } else {
        snprintf(resolved, sizeof resolved, "%s", path);
    }
    int rc;
    if (ends_with(resolved, ".json")) {
        rc = open_index(st, resolved);
    } else {
        int cap = 0;
        rc = add_file(st, resolved);
        if (rc == 0) rc = read_header(st, 0, &cap);
        if (rc == 0) qsort(st->tensors, (size_t)st->n_tensors, sizeof *st->tensors, compare_by_name);
    }
    for (int i = 1; rc == 0 && i < st->n_tensors; i++)
        if (!strcmp(st->tensors[i - 1].name, st->tensors[i].name))
            rc = tn_fail("%s: tensor '%s' appears twice (in %s and %s)", resolved, st->tensors[i].name,
                         st->paths[st->tensors[i - 1].file], st->paths[st->tensors[i].file]);
    if (rc != 0) tn_safetensors_close(st);
    return rc;
}

void tn_safetensors_close(tn_safetensors *st) {
    for (int i = 0; i < st->n_tensors; i++) free(st->tensors[i].name);
    free(st->tensors);
    for (int i = 0; i < st->n_files; i++) {
        tn_unmap_file(&st->files[i]);
        free(st->paths[i]);
    }
    free(st->files);
    free(st->paths);
    memset(st, 0, sizeof *st);
}

const tn_tensor_info *tn_safetensors_find(const tn_safetensors *st, const char *name) {
    int lo = 0, hi = st->n_tensors - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        int c = strcmp(st->tensors[mid].name, name);
        if (c == 0) return &st->tensors[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

const void *tn_safetensors_data(const tn_safetensors *st, const tn_tensor_info *t) {
    return st->files[t->file].data + t->data_offset;
}
