/* rmsnorm_impl.h - RMSNorm (Llama, Qwen2, Mistral, Granite: y = x̂·w; Gemma:
 * y = x̂·(1 + w)). Included by ops_impl.h. */

/* Forward, one row x [C] at a time:
 *
 *     rstd = 1 / sqrt(mean_c x_c² + eps)
 *     x̂_c  = x_c · rstd
 *     y_c  = x̂_c · g_c,    g = w, or 1 + w when one_plus (Gemma)
 *
 * rstd [T] is saved for backward. The products are taken in transformers'
 * order: (x · rstd) first, then the weight. */
void FN(tn_rmsnorm_forward)(real *y, real *rstd, const real *x, const real *w, int T, int C, real eps,
                            int one_plus) {
#pragma omp parallel for if ((int64_t)T * C >= PAR_MIN)
    for (int t = 0; t < T; t++) {
        const real *xt = x + (size_t)t * C;
        real *yt = y + (size_t)t * C;
        real ss = 0;
        for (int c = 0; c < C; c++) ss += xt[c] * xt[c];
        real r = 1 / SQRT(ss / C + eps);
        rstd[t] = r;
        if (one_plus)
            for (int c = 0; c < C; c++) yt[c] = (xt[c] * r) * (1 + w[c]);
        else
            for (int c = 0; c < C; c++) yt[c] = (xt[c] * r) * w[c];
    }
}

/* Backward. With x̂ = x·rstd and ∂rstd/∂x_c = −x_c·rstd³/C:
 *
 *     dx_c += rstd · (dy_c g_c − x̂_c · m),   m = (1/C) Σ_k dy_k g_k x̂_k
 *     dw_c += Σ_t dy_tc · x̂_tc               (the same for w and 1 + w)
 *
 * dx runs over rows; dw over blocks of columns, each summing its rows in
 * order, so no two threads add into the same dw_c. */
void FN(tn_rmsnorm_backward)(real *dx, real *dw, const real *dy, const real *x, const real *w, const real *rstd,
                             int T, int C, int one_plus) {
    if (dx) {
#pragma omp parallel for if ((int64_t)T * C >= PAR_MIN)
        for (int t = 0; t < T; t++) {
            const real *xt = x + (size_t)t * C, *dyt = dy + (size_t)t * C;
            real *dxt = dx + (size_t)t * C;
            real r = rstd[t], m = 0;
            for (int c = 0; c < C; c++) m += dyt[c] * (one_plus ? 1 + w[c] : w[c]) * (xt[c] * r);
            m /= C;
            for (int c = 0; c < C; c++) dxt[c] += r * (dyt[c] * (one_plus ? 1 + w[c] : w[c]) - (xt[c] * r) * m);
        }
    }
    if (dw) {
        enum { BLOCK = 256 };
        int nblocks = (C + BLOCK - 1) / BLOCK;
#pragma omp parallel for if ((int64_t)T * C >= PAR_MIN)
        for (int blk = 0; blk < nblocks; blk++) {
            int c0 = blk * BLOCK, c1 = c0 + BLOCK < C ? c0 + BLOCK : C;
            real sum[BLOCK] = {0};
            for (int t = 0; t < T; t++) {
                const real *xt = x + (size_t)t * C, *dyt = dy + (size_t)t * C;
                real r = rstd[t];
                for (int c = c0; c < c1; c++) sum[c - c0] += dyt[c] * (xt[c] * r);
            }
            for (int c = c0; c < c1; c++) dw[c] += sum[c - c0];
        }
    }
}
