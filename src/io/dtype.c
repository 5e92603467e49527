#include "io/dtype.h"

#include <string.h>

static const struct {
    const char *name;
    size_t size;
} dtypes[TN_DTYPE_COUNT] = {
    [TN_DTYPE_F32] = {"F32", 4},  [TN_DTYPE_F16] = {"F16", 2},  [TN_DTYPE_BF16] = {"BF16", 2},
    [TN_DTYPE_F64] = {"F64", 8},  [TN_DTYPE_I64] = {"I64", 8},  [TN_DTYPE_I32] = {"I32", 4},
    [TN_DTYPE_I16] = {"I16", 2},  [TN_DTYPE_I8] = {"I8", 1},    [TN_DTYPE_U64] = {"U64", 8},
    [TN_DTYPE_U32] = {"U32", 4},  [TN_DTYPE_U16] = {"U16", 2},  [TN_DTYPE_U8] = {"U8", 1},
    [TN_DTYPE_BOOL] = {"BOOL", 1},
};

int tn_dtype_from_name(const char *name) {
    for (int i = 0; i < TN_DTYPE_COUNT; i++)
        if (!strcmp(dtypes[i].name, name)) return i;
    return -1;
}

const char *tn_dtype_name(tn_dtype t) { return (unsigned)t < TN_DTYPE_COUNT ? dtypes[t].name : "?"; }

size_t tn_dtype_size(tn_dtype t) { return (unsigned)t < TN_DTYPE_COUNT ? dtypes[t].size : 0; }

int tn_dtype_from_torch_name(const char *name) {
    if (!strcmp(name, "bfloat16")) return TN_DTYPE_BF16;
    if (!strcmp(name, "float16") || !strcmp(name, "half")) return TN_DTYPE_F16;
    if (!strcmp(name, "float32") || !strcmp(name, "float")) return TN_DTYPE_F32;
    return -1;
}

uint16_t tn_f32_to_bf16(float f) {
    union { float f; uint32_t u; } v = {f};
    if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x40); /* quiet NaN */
    uint32_t rounding = 0x7fffu + ((v.u >> 16) & 1u);
    return (uint16_t)((v.u + rounding) >> 16);
}

/* IEEE half <-> single, exact for every half value; rounding to nearest even
 * on the way down, with subnormals and overflow to infinity. */
float tn_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                mant <<= 1;
            } while (!(mant & 0x400u));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    union { uint32_t u; float f; } v = {bits};
    return v.f;
}

uint16_t tn_f32_to_f16(float f) {
    union { float f; uint32_t u; } v = {f};
    uint32_t x = v.u;
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t absx = x & 0x7fffffffu;
    if (absx > 0x7f800000u) return sign | 0x7e00u; /* NaN */
    if (absx >= 0x477ff000u) return sign | 0x7c00u; /* overflow (rounds to inf) */
    if (absx < 0x38800000u) { /* below the smallest normal half: subnormal or zero */
        if (absx < 0x33000000u) return sign; /* rounds to zero */
        /* value = m * 2^(e-150); the half subnormal unit is 2^-24 */
        uint32_t e = absx >> 23;
        uint32_t m = (absx & 0x7fffffu) | 0x800000u;
        uint32_t s = 126 - e; /* 14..24 bits to drop */
        uint32_t q = m >> s;
        uint32_t rem = m & ((1u << s) - 1);
        uint32_t halfway = 1u << (s - 1);
        if (rem > halfway || (rem == halfway && (q & 1u))) q++;
        return sign | (uint16_t)q;
    }
    uint32_t bits = absx - 0x38000000u; /* rebias 127 -> 15 */
    uint32_t q = bits >> 13;
    uint32_t rem = bits & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1u))) q++;
    return sign | (uint16_t)q;
}
