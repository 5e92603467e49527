/* matmul_impl.h - the Linear layer, y = x · Wᵀ + b, through BLAS.
 * Included by ops_impl.h, which defines real, FN and GEMM. */

/* Forward. x [T, in], W [out, in] (PyTorch's layout), b [out]:
 *
 *     y[t, o] = Σ_i x[t, i] · W[o, i] + b[o]
 *
 * one GEMM with W transposed; accumulate adds the product to y (beta = 1),
 * which is how a LoRA branch lands on the base projection's output. OpenBLAS
 * splits a product over M and N, never over the summed dimension, so y does
 * not depend on the thread count. */
void FN(tn_matmul_forward)(real *y, const real *x, const real *w, const real *bias, int T, int in, int out,
                           int accumulate) {
    if (T <= 0 || out <= 0) return;
    if (in > 0)
        GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, T, out, in, 1, x, in, w, in, accumulate ? 1 : 0, y, out);
    else if (!accumulate)
        memset(y, 0, (size_t)T * out * sizeof(real));
    if (!bias) return;
#pragma omp parallel for if ((int64_t)T * out >= PAR_MIN)
    for (int t = 0; t < T; t++) {
        real *yt = y + (size_t)t * out;
        for (int o = 0; o < out; o++) yt[o] += bias[o];
    }
}

/* Backward. From y = x · Wᵀ + b:
 *
 *     dx[t, i] += Σ_o dy[t, o] · W[o, i]     (dx += dy · W)
 *     dW[o, i] += Σ_t dy[t, o] · x[t, i]     (dW += dyᵀ · x)
 *     db[o]    += Σ_t dy[t, o]
 *
 * Any of dx, dw, dbias may be NULL (LoRA training never asks for the frozen
 * base's dW). db is summed per column over t in order, columns split among
 * threads. */
void FN(tn_matmul_backward)(real *dx, real *dw, real *dbias, const real *dy, const real *x, const real *w, int T,
                            int in, int out) {
    if (T <= 0 || out <= 0) return;
    if (dx && in > 0)
        GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, in, out, 1, dy, out, w, in, 1, dx, in);
    if (dw && in > 0)
        GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, T, 1, dy, out, x, in, 1, dw, in);
    if (!dbias) return;
    enum { BLOCK = 256 };
    int nblocks = (out + BLOCK - 1) / BLOCK;
#pragma omp parallel for if ((int64_t)T * out >= PAR_MIN)
    for (int blk = 0; blk < nblocks; blk++) {
        int o0 = blk * BLOCK, o1 = o0 + BLOCK < out ? o0 + BLOCK : out;
        real sum[BLOCK] = {0};
        for (int t = 0; t < T; t++) {
            const real *dyt = dy + (size_t)t * out;
            for (int o = o0; o < o1; o++) sum[o - o0] += dyt[o];
        }
        for (int o = o0; o < o1; o++) dbias[o] += sum[o - o0];
    }
}
