/* tensor_read.c - tensors as fp32 (see tensor_read.h). */
#include "export/tensor_read.h"

#include <stdio.h>
#include <string.h>

#include "io/dtype.h"
#include "util/error.h"
#include "util/platform.h"

static int is_mlx_quantized(const tn_spec *spec, const tn_tensor_info *t) {
    return spec && spec->quant_bits > 0 && t->dtype == TN_DTYPE_U32 && t->n_dims == 2;
}

/* "<base>.scales" / "<base>.biases" of "<base>.weight". */
static const tn_tensor_info *mlx_aux(const tn_safetensors *st, const char *name, const char *what) {
    const char *w = strstr(name, ".weight");
    if (!w) return NULL;
    char aux[512];
    snprintf(aux, sizeof aux, "%.*s.%s", (int)(w - name), name, what);
    return tn_safetensors_find(st, aux);
}

int tn_tensor_logical_shape(const tn_safetensors *st, const tn_spec *spec, const char *name, int64_t *shape) {
    const tn_tensor_info *t = tn_safetensors_find(st, name);
    if (!t) return -1;
    for (int d = 0; d < t->n_dims; d++) shape[d] = t->shape[d];
    if (is_mlx_quantized(spec, t)) shape[1] = t->shape[1] * 32 / spec->quant_bits;
    return t->n_dims;
}

tn_dtype tn_tensor_float_dtype(const tn_safetensors *st, const char *name) {
    const tn_tensor_info *t = tn_safetensors_find(st, name);
    if (t && t->dtype == TN_DTYPE_U32) {
        const tn_tensor_info *s = mlx_aux(st, name, "scales");
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

int tn_tensor_read_f32(const tn_safetensors *st, const tn_spec *spec, const char *name, float *dst, const char *where) {
    const tn_tensor_info *t = tn_safetensors_find(st, name);
    if (!t) return tn_fail("%s: missing tensor %s", where, name);
    const unsigned char *src = tn_safetensors_data(st, t);
    if (float_dtype(t->dtype)) {
        const int64_t n = (int64_t)t->n_elements;
        const tn_dtype dt = t->dtype;
        if (dt == TN_DTYPE_F32) memcpy(dst, src, (size_t)n * 4);
        else {
#pragma omp parallel for schedule(static) if (n > 65536)
            for (int64_t i = 0; i < n; i++) dst[i] = load_one(src, dt, (uint64_t)i);
        }
        /* read once: the mapped pages leave this process's resident set */
        tn_release_pages(src, t->n_bytes);
        return 0;
    }
    if (!is_mlx_quantized(spec, t))
        return tn_fail("%s: tensor %s has dtype %s (expected F32, F16, BF16, or U32 with MLX quantization in config.json)", where, name,
                       tn_dtype_name(t->dtype));
    const tn_tensor_info *sc = mlx_aux(st, name, "scales"), *bi = mlx_aux(st, name, "biases");
    const int bits = (int)spec->quant_bits, per_word = 32 / bits;
    const int64_t rows = t->shape[0], cols = t->shape[1] * per_word, group = spec->quant_group_size;
    if (!sc || !bi) return tn_fail("%s: tensor %s is MLX-quantized but its .scales / .biases are missing", where, name);
    if (cols % group || sc->n_dims != 2 || sc->shape[0] != rows || sc->shape[1] != cols / group || bi->n_dims != 2 ||
        bi->shape[0] != rows || bi->shape[1] != cols / group || !float_dtype(sc->dtype) || !float_dtype(bi->dtype))
        return tn_fail("%s: tensor %s: scales / biases do not fit a [%lld, %lld] weight in groups of %lld", where, name, (long long)rows,
                       (long long)cols, (long long)group);
    const unsigned char *ps = tn_safetensors_data(st, sc), *pb = tn_safetensors_data(st, bi);
    const uint32_t mask = bits == 32 ? 0xffffffffu : ((1u << bits) - 1);
    const tn_dtype sdt = sc->dtype, bdt = bi->dtype;
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t c = 0; c < cols; c++) {
            const uint64_t word_i = (uint64_t)(r * t->shape[1] + c / per_word);
            uint32_t word;
            memcpy(&word, src + 4 * word_i, 4);
            const uint32_t q = (word >> (bits * (c % per_word))) & mask;
            const uint64_t g = (uint64_t)(r * (cols / group) + c / group);
            dst[r * cols + c] = load_one(ps, sdt, g) * (float)q + load_one(pb, bdt, g);
        }
    }
    tn_release_pages(src, t->n_bytes);
    tn_release_pages(ps, sc->n_bytes);
    tn_release_pages(pb, bi->n_bytes);
    return 0;
}
