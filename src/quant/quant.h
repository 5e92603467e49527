/* quant.h - ggml's tensor element types and their block formats, as GGUF
 * stores them, with quantizers bit-identical to ggml's reference routines
 * (quantize_row_*_ref in ggml/src/ggml-quants.c, which llama-quantize and
 * ggml_quantize_chunk run when no importance matrix is given).
 *
 * A row of n values (n a multiple of the type's block size) becomes n / block
 * blocks laid end to end; rows are independent, so tn_quant_rows spreads them
 * over all cores (OpenMP) without changing a byte.
 *
 *   type   block  bytes  layout (ggml-common.h)
 *   F32        1      4
 *   F16        1      2  IEEE half, rounded to nearest even
 *   BF16       1      2  bfloat16, rounded to nearest even
 *   Q4_0      32     18  fp16 d, 16 bytes of nibbles (value j low, j+16 high)
 *   Q5_0      32     22  fp16 d, u32 of fifth bits, 16 bytes of nibbles
 *   Q8_0      32     34  fp16 d, 32 int8
 *   Q4_K     256    144  fp16 d, fp16 dmin, 12 bytes of 6-bit scales and mins,
 *                        128 bytes of nibbles (8 sub-blocks of 32)
 *   Q6_K     256    210  128 bytes low nibbles, 64 bytes high 2 bits,
 *                        16 int8 scales, fp16 d (16 sub-blocks of 16) */
#ifndef TUNE_QUANT_H
#define TUNE_QUANT_H

#include <stddef.h>
#include <stdint.h>

/* ggml_type ids, as GGUF tensor infos carry them. */
typedef enum {
    TN_GGML_F32 = 0,
    TN_GGML_F16 = 1,
    TN_GGML_Q4_0 = 2,
    TN_GGML_Q5_0 = 6,
    TN_GGML_Q8_0 = 8,
    TN_GGML_Q4_K = 12,
    TN_GGML_Q6_K = 14,
    TN_GGML_BF16 = 30,
} tn_ggml_type;

/* Whether this build writes the type (the list above). */
int tn_ggml_type_known(int type);
/* "Q4_K" (ggml_type_name's spelling, upper case as in llama.cpp's logs). */
const char *tn_ggml_type_name(tn_ggml_type t);
/* Values per block (1 for the float types) and bytes per block. */
int tn_ggml_block_size(tn_ggml_type t);
int tn_ggml_type_size(tn_ggml_type t);
int tn_ggml_is_quantized(tn_ggml_type t);
/* Bytes of a row of n values; n must be a multiple of the block size. */
uint64_t tn_ggml_row_size(tn_ggml_type t, int64_t n);

/* One row of n values (a multiple of the block size) into dst. */
void tn_quantize_row_q4_0(const float *x, void *dst, int64_t n);
void tn_quantize_row_q5_0(const float *x, void *dst, int64_t n);
void tn_quantize_row_q8_0(const float *x, void *dst, int64_t n);
void tn_quantize_row_q4_k(const float *x, void *dst, int64_t n);
void tn_quantize_row_q6_k(const float *x, void *dst, int64_t n);

/* The inverse: one row of n values of type t back to fp32, as ggml's
 * dequantize_row_* (what llama.cpp computes with). */
void tn_dequantize_row(tn_ggml_type t, const void *src, float *y, int64_t n);

/* nrows rows of n_per_row values into type t (float types are converted),
 * rows spread over the cores. Returns the bytes written (nrows * row size),
 * or 0 with a message when n_per_row is not a multiple of the block size. */
uint64_t tn_quant_rows(tn_ggml_type t, const float *src, void *dst, int64_t nrows, int64_t n_per_row);

#endif
