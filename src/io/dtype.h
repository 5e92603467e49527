/* dtype.h - element types of stored tensors (safetensors names) and the
 * conversions between the 16-bit float formats and fp32. */
#ifndef TUNE_DTYPE_H
#define TUNE_DTYPE_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    TN_DTYPE_F32,
    TN_DTYPE_F16,
    TN_DTYPE_BF16,
    TN_DTYPE_F64,
    TN_DTYPE_I64,
    TN_DTYPE_I32,
    TN_DTYPE_I16,
    TN_DTYPE_I8,
    TN_DTYPE_U64,
    TN_DTYPE_U32,
    TN_DTYPE_U16,
    TN_DTYPE_U8,
    TN_DTYPE_BOOL,
    TN_DTYPE_COUNT
} tn_dtype;

/* "F32" -> TN_DTYPE_F32; -1 when unknown. */
int tn_dtype_from_name(const char *name);
const char *tn_dtype_name(tn_dtype t);
size_t tn_dtype_size(tn_dtype t);
/* config.json's torch_dtype spelling ("bfloat16", "float16", "float32"). */
int tn_dtype_from_torch_name(const char *name);

static inline float tn_bf16_to_f32(uint16_t h) {
    union { uint32_t u; float f; } v = {(uint32_t)h << 16};
    return v.f;
}
/* Round to nearest even, as torch does; NaN stays NaN. */
uint16_t tn_f32_to_bf16(float f);
float tn_f16_to_f32(uint16_t h);
uint16_t tn_f32_to_f16(float f);

#endif
