/* tensor_read.c - tensors as fp32 (see tensor_read.h). */
#include "export/tensor_read.h"

#include <stdio.h>
#include <string.h>

#include "io/dtype.h"
#include "util/error.h"
#include "util/platform.h"

/* "<base>.scales" / "<base>.biases" of "<base>.weight". */
static const tn_tensor_info *mlx_aux(const tn_safetensors *st, const char *name, const char *what) {
    const char *w = strstr(name, ".weight");
    if (!w) return NULL;
    char aux[512];
    snprintf(aux, sizeof aux, "%.*s.%s", (int)(w - name), name, what);
    return tn_safetensors_find(st, aux);
}

/* The logical shape of one stored tensor (MLX: the last axis unpacked). */
static int stored_shape(const tn_safetensors *st, const tn_spec *spec, const tn_tensor_info *t, int64_t *shape) {
    for (int d = 0; d < t->n_dims; d++) shape[d] = t->shape[d];
    int bits;
    int64_t group;
    if (tn_mlx_layout(spec, st, t, &bits, &group)) shape[t->n_dims - 1] = t->shape[t->n_dims - 1] * 32 / bits;
    return t->n_dims;
}

int tn_tensor_logical_shape(const tn_safetensors *st, const tn_spec *spec, const char *name, int64_t *shape) {
    const tn_tensor_info *parts[4];
    int n = tn_tensor_parts(spec, st, name, parts);
    if (!n) return -1;
    int nd = stored_shape(st, spec, parts[0], shape);
    if (n > 1 && nd >= 2) shape[nd - 2] *= n;
    return nd;
}

tn_dtype tn_tensor_float_dtype(const tn_safetensors *st, const tn_spec *spec, const char *name) {
    const tn_tensor_info *parts[4];
    const tn_tensor_info *t = tn_tensor_parts(spec, st, name, parts) ? parts[0] : NULL;
    if (t && t->dtype == TN_DTYPE_U32) {
        const tn_tensor_info *s = mlx_aux(st, t->name, "scales");
        if (s) return s->dtype;
    }
    return t ? t->dtype : TN_DTYPE_F32;
}

static float load_one(const unsigned char *p, tn_dtype dt, uint64_t i) {
    switch (dt) {
    case TN_DTYPE_BF16: return tn_bf16_to_f32((uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)));
    case TN_DTYPE_F16: return tn_f16_to_f32((uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)));
    default: {
        float v;
        memcpy(&v, p + 4 * i, 4);
        return v;
    }
    }
}

static int float_dtype(tn_dtype d) { return d == TN_DTYPE_F32 || d == TN_DTYPE_F16 || d == TN_DTYPE_BF16; }

/* Rows [row0, row0 + nrows) of stored tensor t seen as [rows, cols] (its
 * leading axes flattened; cols its last, unpacked) into dst as fp32. */
static int read_rows(const tn_safetensors *st, const tn_spec *spec, const tn_tensor_info *t, int64_t row0, int64_t nrows, float *dst,
                     const char *where) {
    const unsigned char *src = tn_safetensors_data(st, t);
    const int64_t last = t->n_dims ? t->shape[t->n_dims - 1] : 1;
    if (float_dtype(t->dtype)) {
        const int64_t n = nrows * last, off = row0 * last;
        const tn_dtype dt = t->dtype;
        if (dt == TN_DTYPE_F32) memcpy(dst, src + 4 * off, (size_t)n * 4);
        else {
#pragma omp parallel for schedule(static) if (n > 65536)
            for (int64_t i = 0; i < n; i++) dst[i] = load_one(src, dt, (uint64_t)(off + i));
        }
        return 0;
    }
    int bits;
    int64_t group;
    if (!tn_mlx_layout(spec, st, t, &bits, &group))
        return tn_fail("%s: tensor %s has dtype %s (expected F32, F16, BF16, or U32 with MLX quantization in config.json)", where, t->name,
                       tn_dtype_name(t->dtype));
    const tn_tensor_info *sc = mlx_aux(st, t->name, "scales"), *bi = mlx_aux(st, t->name, "biases");
    const int per_word = 32 / bits;
    const int64_t rows = (int64_t)(t->n_elements / (uint64_t)last), cols = last * per_word, ng = cols / group;
    if (cols % group || !bi || sc->n_elements != (uint64_t)(rows * ng) || bi->n_elements != (uint64_t)(rows * ng) || !float_dtype(sc->dtype) ||
        !float_dtype(bi->dtype))
        return tn_fail("%s: tensor %s: scales / biases do not fit a [%lld, %lld] weight in groups of %lld", where, t->name, (long long)rows,
                       (long long)cols, (long long)group);
    const unsigned char *ps = tn_safetensors_data(st, sc), *pb = tn_safetensors_data(st, bi);
    const uint32_t mask = bits == 32 ? 0xffffffffu : ((1u << bits) - 1);
    const tn_dtype sdt = sc->dtype, bdt = bi->dtype;
#pragma omp parallel for schedule(static) if (nrows * cols > 65536)
    for (int64_t i = 0; i < nrows; i++) {
        const int64_t r = row0 + i;
        for (int64_t c = 0; c < cols; c++) {
            const uint64_t word_i = (uint64_t)(r * last + c / per_word);
            uint32_t word;
            memcpy(&word, src + 4 * word_i, 4);
            const uint32_t q = (word >> (bits * (c % per_word))) & mask;
            const uint64_t g = (uint64_t)(r * ng + c / group);
            dst[i * cols + c] = load_one(ps, sdt, g) * (float)q + load_one(pb, bdt, g);
        }
    }
    return 0;
}

/* The pages of a stored tensor (and its scales / biases), read once. */
static void release(const tn_safetensors *st, const tn_tensor_info *t) {
    tn_release_pages(tn_safetensors_data(st, t), t->n_bytes);
    if (t->dtype != TN_DTYPE_U32) return;
    for (int k = 0; k < 2; k++) {
        const tn_tensor_info *x = mlx_aux(st, t->name, k ? "biases" : "scales");
        if (x) tn_release_pages(tn_safetensors_data(st, x), x->n_bytes);
    }
}

int tn_tensor_read_slab_f32(const tn_safetensors *st, const tn_spec *spec, const char *name, int64_t slab, float *dst, const char *where) {
    const tn_tensor_info *parts[4];
    const int n = tn_tensor_parts(spec, st, name, parts);
    if (!n) return tn_fail("%s: missing tensor %s", where, name);
    int64_t shape[TN_MAX_DIMS];
    const int nd = stored_shape(st, spec, parts[0], shape);
    if (nd < 2) return tn_fail("%s: tensor %s has %d dimensions, not a matrix", where, name, nd);
    const int64_t rows = shape[nd - 2], cols = shape[nd - 1];
    for (int p = 0; p < n; p++)
        if (read_rows(st, spec, parts[p], slab * rows, rows, dst + p * rows * cols, where)) return -1;
    return 0;
}

int tn_tensor_read_f32(const tn_safetensors *st, const tn_spec *spec, const char *name, float *dst, const char *where) {
    const tn_tensor_info *parts[4];
    const int n = tn_tensor_parts(spec, st, name, parts);
    if (!n) return tn_fail("%s: missing tensor %s", where, name);
    const tn_tensor_info *t = parts[0];
    int64_t shape[TN_MAX_DIMS];
    const int nd = stored_shape(st, spec, t, shape);
    if (n == 1) {
        const int64_t last = nd ? t->shape[nd - 1] : 1;
        if (last && read_rows(st, spec, t, 0, (int64_t)(t->n_elements / (uint64_t)last), dst, where)) return -1;
        /* read once: the mapped pages leave this process's resident set */
        release(st, t);
        return 0;
    }
    /* parts split each [R, C] matrix by rows: matrix by matrix */
    const int64_t mats = nd > 2 ? shape[0] : 1, per = shape[nd - 2] * shape[nd - 1] * n;
    for (int64_t e = 0; e < mats; e++)
        if (tn_tensor_read_slab_f32(st, spec, name, e, dst + e * per, where)) return -1;
    for (int p = 0; p < n; p++) release(st, parts[p]);
    return 0;
}
