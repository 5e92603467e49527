/* embedding_impl.h - token embedding lookup (with Gemma's √C scale).
 * Included by ops_impl.h. */

/* Forward: y[t, :] = scale · E[ids[t], :], E [V, C]. */
void FN(tn_embedding_forward)(real *y, const real *e, const int32_t *ids, int T, int C, real scale) {
#pragma omp parallel for if ((int64_t)T * C >= PAR_MIN)
    for (int t = 0; t < T; t++) {
        assert(ids[t] >= 0);
        const real *row = e + (size_t)ids[t] * C;
        real *yt = y + (size_t)t * C;
        for (int c = 0; c < C; c++) yt[c] = scale * row[c];
    }
}

/* Backward: dE[ids[t], :] += scale · dy[t, :]. A token repeated in the batch
 * adds into one row several times, so threads split the columns, not the
 * tokens, and each column sums its tokens in order. */
void FN(tn_embedding_backward)(real *de, const real *dy, const int32_t *ids, int T, int C, real scale) {
    enum { BLOCK = 64 };
    int nblocks = (C + BLOCK - 1) / BLOCK;
#pragma omp parallel for if ((int64_t)T * C >= PAR_MIN)
    for (int blk = 0; blk < nblocks; blk++) {
        int c0 = blk * BLOCK, c1 = c0 + BLOCK < C ? c0 + BLOCK : C;
        for (int t = 0; t < T; t++) {
            real *row = de + (size_t)ids[t] * C;
            const real *dyt = dy + (size_t)t * C;
            for (int c = c0; c < c1; c++) row[c] += scale * dyt[c];
        }
    }
}
