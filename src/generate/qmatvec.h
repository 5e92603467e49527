/* qmatvec.h - matrix-vector products that read ggml-quantized rows as a GGUF
 * stores them (no fp32 copy of the weights): y[r] = Σ_blocks d·Σ q·x for
 * single-token decoding (and F16 / BF16 rows, see tn_qmatvec), x quantized to int8 blocks by default (see
 * tn_qmatvec_fp32_act). Q4_0, Q5_0, Q8_0, Q4_K and Q6_K have kernels of
 * their own: with int8 activations, AVX-512 VNNI or AVX2 ones
 * (qmatvec_x86.h) chosen at run time on x86-64, portable C elsewhere; with
 * fp32 activations, 16 float lanes the compiler vectorises (GCC clones for
 * AVX-512 and AVX2 on x86-64). Every other type tn_gguf_dequantize_row
 * reads goes through a row dequantized into a per-thread buffer. With fp32
 * activations the result equals dequantize-then-multiply up to the order
 * of the float additions. Rows are spread over the decode pool's threads
 * (generate/pool.h; OpenMP when TUNE_POOL=0). */
#ifndef TUNE_QMATVEC_H
#define TUNE_QMATVEC_H

#include <stdint.h>

/* Whether the type has a kernel of its own (others take the generic path). */
int tn_qmatvec_fast(int type);
/* 1: use the portable C kernels even where AVX2 is there (tests; also set by
 * the TUNE_NO_SIMD environment variable). -1 until first use. */
extern int tn_qmatvec_portable_only;
/* 1: fp32 activations (the result is dequantize-then-multiply up to the
 * order of additions; also set by the TUNE_QMATVEC_FP32 environment
 * variable); 0: x quantized once per product to int8 blocks of 32 (scale
 * amax/127 in fp32) and multiplied int8 by int8 (AVX2 maddubs where there),
 * within Σ_blocks Σ|w|·amax/254 of the exact product. -1 until first use. */
extern int tn_qmatvec_fp32_act;
/* 1: the AVX2 int8 kernels even where AVX-512 VNNI is there (tests). */
extern int tn_qmatvec_no_vnni;
/* 1: the AVX2 kernels of 16-bit rows even where AVX-512 is there (tests). */
extern int tn_qmatvec_no_avx512;
/* Which kernels of 16-bit rows (F16, BF16) tn_qmatvec runs now: "avx512",
 * "avx2" or "portable" (after the flags above). */
const char *tn_qmatvec_kernels16(void);
/* Which int8 kernels tn_qmatvec runs now: "avx512-vnni", "avx2" or
 * "portable" (after the flags above). */
const char *tn_qmatvec_kernels(void);
/* x (n a multiple of 32) as the int8 products see it: per block of 32 the
 * scale d = amax/127, the values round(x/d) (nearest, ties to even), their
 * sums per 16 and per 32; AVX2 or portable after the flags above (the two
 * give the same bytes). For tests. */
void tn_qmatvec_quantize_x(const float *x, int64_t n, int8_t *q, float *d, int32_t *s16, int32_t *s32);
/* y[r] = (Σ_c W[r, c]·x[c]) for r < rows, W rows of `cols` values of ggml
 * type `type` laid end to end from w (cols a multiple of the block size).
 * F16 and BF16 rows (any cols) are widened to fp32 exactly and multiplied
 * by x in fp32 (AVX-512 or AVX2 + F16C at run time, portable C elsewhere):
 * convert-then-multiply up to the order of the float additions. */
void tn_qmatvec(int type, const void *w, const float *x, float *y, int64_t rows, int64_t cols);

#endif
