/* dequant_gguf.h - every ggml type that a GGUF file from llama.cpp may hold
 * for a dense model's weights, back to fp32, as ggml's dequantize_row_*
 * (ggml/src/ggml-quants.c) computes it: the types tune writes (quant.h:
 * F32, F16, BF16, Q4_0, Q5_0, Q8_0, Q4_K, Q6_K) and those llama-quantize
 * writes besides (Q4_1, Q5_1, Q2_K, Q3_K, Q5_K, IQ4_NL, IQ4_XS; F64).
 * The other i-quants (IQ1/IQ2/IQ3 with their lattice tables), ternary,
 * MXFP4/NVFP4 and the new Q1_0/Q2_0 are not read. */
#ifndef TUNE_DEQUANT_GGUF_H
#define TUNE_DEQUANT_GGUF_H

#include <stdint.h>

/* Whether tn_gguf_dequantize_row reads ggml type `type`. */
int tn_gguf_can_dequantize(int type);
/* One row of n values (a multiple of the type's block size) into y. */
void tn_gguf_dequantize_row(int type, const void *src, float *y, int64_t n);
/* "F32, F16, BF16, F64, Q4_0, ..." */
const char *tn_gguf_dequantize_list(void);

#endif
