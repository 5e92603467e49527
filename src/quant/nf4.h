/* nf4.h - NF4, the 4-bit NormalFloat of QLoRA (Dettmers et al. 2023), with
 * double-quantized scales, as the frozen base of `tune train --qlora nf4`.
 *
 * Blocks of 64 weights: each weight is the nearest of the 16 NF4 levels
 * (quantiles of a standard normal, scaled to [-1, 1]) times the block's
 * absmax; two weights a byte (first in the low nibble). The absmaxes are
 * themselves quantized: minus their mean (one fp32 per tensor), in groups of
 * 256 blocks, as int8 of the group's largest magnitude / 127 (one fp32 per
 * group). Bytes: n/2 + n/64 + 4·ceil(n/64/256) + 4. bitsandbytes codes the
 * second level with its dynamic 8-bit map instead of int8: the same size,
 * a similar error; the first level (the NF4 levels and nearest rounding) is
 * bitsandbytes'. */
#ifndef TUNE_NF4_H
#define TUNE_NF4_H

#include <stdint.h>

#define TN_NF4_BLOCK 64
#define TN_NF4_GROUP 256

extern const float tn_nf4_levels[16];

/* Bytes of an NF4 tensor of n values. */
uint64_t tn_nf4_bytes(int64_t n);
/* Quantizes n values (any n; the last block may be short) into dst. */
void tn_nf4_quantize(const float *x, int64_t n, void *dst);
/* dst[0..n) from an NF4 tensor of n values. */
void tn_nf4_dequantize(const void *src, int64_t n, float *dst);

#endif
