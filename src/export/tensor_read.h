/* tensor_read.h - one tensor of a checkpoint as fp32, whatever it is stored
 * as: F32, F16, BF16, or an MLX affine-quantized Linear (weight U32 packing
 * 32/bits values a word along the input axis, lowest bits first, with
 * per-group `scales` and `biases`: w = scale·q + bias). */
#ifndef TUNE_TENSOR_READ_H
#define TUNE_TENSOR_READ_H

#include <stdint.h>

#include "io/safetensors.h"
#include "model/spec.h"

/* `name` is a Hugging Face name; a tensor stored under the family's aliases
 * (mlx-lm's split experts) reads as the Hugging Face tensor it came from.
 * The logical shape of tensor `name` (MLX: the unpacked [out, in]); returns
 * the number of dimensions, or -1 when absent. */
int tn_tensor_logical_shape(const tn_safetensors *st, const tn_spec *spec, const char *name, int64_t *shape);
/* Reads tensor `name` into dst (its logical element count), on all cores.
 * `where` names the checkpoint in errors. */
int tn_tensor_read_f32(const tn_safetensors *st, const tn_spec *spec, const char *name, float *dst, const char *where);
/* Matrix `slab` of a stacked [N, R, C] tensor `name` ([R, C] values). */
int tn_tensor_read_slab_f32(const tn_safetensors *st, const tn_spec *spec, const char *name, int64_t slab, float *dst, const char *where);
/* The stored float dtype of a tensor (MLX: its scales'), for outputs that
 * keep the model's precision. */
tn_dtype tn_tensor_float_dtype(const tn_safetensors *st, const tn_spec *spec, const char *name);

#endif
