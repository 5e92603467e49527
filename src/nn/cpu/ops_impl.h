/* ops_impl.h - the CPU operations of nn/ops.h, written once for an element
 * type `real` and compiled twice: ops_f32.c (float, the backend the trainer
 * runs) and ops_f64.c (double, for the finite-difference gradient tests).
 * The including file sets TN_OPS_DOUBLE to 0 or 1 before including this.
 *
 * Everything that differs between the two lives in this prelude: the type,
 * the name suffix, the BLAS product and the libm functions. The math is in
 * one file per operation, included below in the order of a model's layer.
 *
 * Threading (OpenMP): every parallel loop writes disjoint outputs and every
 * sum is taken in an order fixed by the shapes alone, so our loops give the
 * same bits whatever the number of threads. Where many rows add into one
 * gradient (rmsnorm's dw, the bias's db, embedding rows), the loop runs over
 * the receiving columns instead of the contributing rows; attention's dk, dv
 * collect per-head slices added in head order. The one exception is outside
 * this code: OpenBLAS blocks the summed dimension of a product differently
 * in its threaded and single-threaded drivers for some sizes (K = 333, 500,
 * 1000 differ in the last bits between 1 and 2 threads; 512, 896, 4864 do
 * not), so a matmul is reproducible for a fixed OpenBLAS thread count.
 * Attention's block products run single-threaded inside our loops, so
 * attention is thread-count invariant. */
#ifndef TN_OPS_DOUBLE
#error "define TN_OPS_DOUBLE to 0 (float) or 1 (double) before including ops_impl.h"
#endif

#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/ops.h"

#if TN_OPS_DOUBLE
typedef double real;
#define FN(name) name##_d
#define GEMM cblas_dgemm
#define EXP exp
#define LOG log
#define TANH tanh
#define SQRT sqrt
#define ROPE_COS(t) ((t)->cos_d)
#define ROPE_SIN(t) ((t)->sin_d)
#else
typedef float real;
#define FN(name) name
#define GEMM cblas_sgemm
#define EXP expf
#define LOG logf
#define TANH tanhf
#define SQRT sqrtf
#define ROPE_COS(t) ((t)->cos)
#define ROPE_SIN(t) ((t)->sin)
#endif

/* Below this many elements an elementwise loop stays on one thread: a
 * parallel region costs a few microseconds. */
#define PAR_MIN 32768

/* Scratch for one call (attention's score blocks and per-head gradient slices).
 * The operations return void, so running out of memory here - a few MiB at
 * most, next to the gigabytes the plan allocates - ends the process with a
 * message instead of a crash on NULL. */
static void *scratch(size_t count, size_t size) {
    size_t bytes = count * size;
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "tune: out of memory allocating %zu bytes of operation scratch\n", bytes);
        abort();
    }
    return p;
}

#include "nn/cpu/matmul_impl.h"
#include "nn/cpu/rmsnorm_impl.h"
#include "nn/cpu/rope_impl.h"
#include "nn/cpu/attention_impl.h"
#include "nn/cpu/activations_impl.h"
#include "nn/cpu/embedding_impl.h"
#include "nn/cpu/cross_entropy_impl.h"
#include "nn/cpu/mamba_impl.h"
