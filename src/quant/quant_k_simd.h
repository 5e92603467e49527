/* quant_k_simd.h - AVX2 versions of the K-quant scale searches (quant_k_simd.c),
 * used by quant_k.c when the CPU has AVX2; the same bits as the scalar code. */
#ifndef TUNE_QUANT_K_SIMD_H
#define TUNE_QUANT_K_SIMD_H

#include <stdint.h>

int tn_quant_have_avx2(void);
/* Q4_K: the 8 sub-blocks of 32 of one super-block x[256]: L[256], scales[8], mins[8]. */
void tn_q4k_search_avx2(const float *x, uint8_t *L, float *scales, float *mins);
/* Q6_K: 8 sub-blocks of 16 from x[128]: L[128] (biased by 32), scales[8]. */
void tn_q6k_search_avx2(const float *x, int8_t *L, float *scales);

#endif
