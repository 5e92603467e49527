/* qmatvec_bench.c - time of tn_qmatvec (generate/qmatvec.h) on every
 * quantized 2-D matrix of a GGUF, as one decode step multiplies them,
 * summed per ggml type (ms per token). Not part of the test suite.
 *   make tune && cc -O2 -std=c11 -fopenmp -Isrc -Ibuild/gen bench/qmatvec_bench.c \
 *     build/release/src/generate/qmatvec.o build/release/src/generate/pool.o build/release/src/io/*.o \
 *     build/release/src/quant/*.o build/release/src/util/*.o -lcjson -lm -o /tmp/qmatvec_bench
 *   OMP_NUM_THREADS=2 /tmp/qmatvec_bench MODEL.gguf [REPEATS]
 * TUNE_NO_SIMD, TUNE_QMATVEC_FP32, TUNE_POOL=0 choose as for tune generate
 * (a warm-up pass first touches the file's pages). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generate/qmatvec.h"
#include "io/gguf_read.h"
#include "quant/dequant_gguf.h"

int main(int argc, char **argv) {
    if (argc < 2) return fprintf(stderr, "usage: %s MODEL.gguf [REPEATS]\n", argv[0]), 2;
    int reps = argc > 2 ? atoi(argv[2]) : 20;
    tn_gguf g;
    if (tn_gguf_open(argv[1], &g) != 0) return fprintf(stderr, "cannot open %s\n", argv[1]), 1;
    double t_type[64] = {0};
    int n_type[64] = {0};
    float *x = malloc(sizeof(float) * 1 << 20), *y = malloc(sizeof(float) * 1 << 20);
    for (int i = 0; i < 1 << 20; i++) x[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    for (int r = -1; r < reps; r++) /* r = -1: warm-up */
        for (int64_t i = 0; i < g.n_tensors; i++) {
            const tn_gguf_tensor *t = &g.tensors[i];
            if (t->n_dims != 2 || t->type <= 1 || t->type >= 64 || !tn_gguf_can_dequantize(t->type) || t->ne[1] > (1 << 20)) continue;
            double t0 = omp_get_wtime();
            tn_qmatvec(t->type, t->data, x, y, t->ne[1], t->ne[0]);
            double dt = omp_get_wtime() - t0;
            if (r >= 0) t_type[t->type] += dt, n_type[t->type]++;
        }
    double total = 0;
    for (int k = 0; k < 64; k++)
        if (n_type[k]) {
            printf("%-6s %4d matrices  %7.3f ms/token\n", tn_gguf_type_name(k), n_type[k] / reps, 1e3 * t_type[k] / reps);
            total += t_type[k] / reps;
        }
    printf("total  %7.3f ms/token (%d threads)\n", 1e3 * total, omp_get_max_threads());
    tn_gguf_close(&g);
    free(x), free(y);
    return 0;
}
