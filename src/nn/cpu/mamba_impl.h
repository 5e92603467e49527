/* mamba_impl.h - the operations of the Mamba2 mixer (Granite 4.0-H's mamba
 * layers): causal depthwise conv1d + SiLU, dt's softplus, the selective scan,
 * and the gated grouped RMSNorm. Included by ops_impl.h.
 *
 * The reference is transformers 5.17's BambaMixer.torch_forward (which
 * GraniteMoeHybridMambaLayer is), without cache and without attention mask.
 * Per layer, with T = B·S tokens of hidden size Hd:
 *
 *     zxbcdt = x · in_projᵀ                       [T, d_inner + C + H]
 *     z | xBC | dt_raw = split(zxbcdt)            d_inner | C = d_inner + 2GN | H, in that order
 *     xBC = silu(conv1d_causal(xBC) + conv_bias)  depthwise, kernel K, zero left padding
 *     x | Bm | Cm = split(xBC)                    d_inner | G·N | G·N
 *     dt = clamp(softplus(dt_raw + dt_bias), time_step_limit)   default (0, inf): no clamp
 *     A = −exp(A_log)                             [H], in fp32
 *     y = scan(x, dt, A, Bm, Cm) + D·x            see tn_mamba_scan_forward
 *     y = norm.weight ⊙ rmsnorm(y ⊙ silu(z))      the gate before the norm, fp32; over ALL of
 *                                                 d_inner in torch_forward (BambaRMSNormGated
 *                                                 takes mean(-1)), per group in mamba_ssm's kernel
 *     out = y · out_projᵀ
 *
 * transformers evaluates the scan in chunks of 256 (the SSD form: within a
 * chunk, y = (L ∘ C·Bᵀ)·(dt·x) with L_ij = exp(Σ_{j<k≤i} dt_k·A), plus the
 * carried state); that is an exact reorganisation of the recurrence below,
 * which this file runs sequentially. Precision: the decay from position j to
 * i is here a product of (i − j) rounded factors exp(dt_k·A) (relative error
 * ~ (i−j)·u/2, u the unit roundoff) and there exp of a rounded sum (error
 * ~ |Σ dt·A|·(i−j)·u): both are a few ulp times the distance, and both decay
 * to 0 with the true value; the chunked form sums up to 256 products per
 * output where this sums N per step, so neither is systematically better.
 * Against transformers in float64 the double build agrees to ~1e-14, the
 * float build to ~1e-6 relative (tests/unit/test_mamba_ops.c). */

#if TN_OPS_DOUBLE
#define LOG1P log1p
#else
#define LOG1P log1pf
#endif

static inline real mamba_sigmoid(real u) { return 1 / (1 + EXP(-u)); }
/* silu(u) = u·σ(u), as torch's F.silu computes it */
static inline real mamba_silu(real u) { return u * mamba_sigmoid(u); }
/* silu'(u) = σ(u)·(1 + u·(1 − σ(u))) */
static inline real mamba_dsilu(real u) {
    real s = mamba_sigmoid(u);
    return s * (1 + u * (1 - s));
}

/* ---- causal depthwise conv1d + SiLU ------------------------------------- */

/* Forward, for every token t = b·S + s and channel c:
 *
 *     u[t,c] = Σ_{k<K} w[c,k] · x[b·S + s − K + 1 + k, c] + bias[c]   (terms with s − K + 1 + k < 0 are 0)
 *     y[t,c] = silu(u[t,c])
 *
 * PyTorch's nn.Conv1d(groups=C, padding=K−1) keeps the first S outputs:
 * output i = Σ_k w[k]·xpad[i + k], xpad[j] = x[j − K + 1], which is this.
 * The weight's last tap (k = K−1) multiplies the current token. u is not
 * kept: backward recomputes it (K multiply-adds per element). */
void FN(tn_mamba_conv1d_forward)(real *y, const real *x, int ldx, const real *w, const real *bias, int B, int S,
                                 int C, int K) {
    int64_t T = (int64_t)B * S;
#pragma omp parallel for if (T * C * K >= PAR_MIN)
    for (int64_t t = 0; t < T; t++) {
        int s = (int)(t % S);
        real *yt = y + t * C;
        for (int c = 0; c < C; c++) {
            real u = 0;
            for (int k = 0; k < K; k++) {
                int j = s - K + 1 + k;
                if (j >= 0) u += w[(size_t)c * K + k] * x[(t - K + 1 + k) * ldx + c];
            }
            if (bias) u += bias[c];
            yt[c] = mamba_silu(u);
        }
    }
}

/* Backward. With du[t,c] = dy[t,c] · silu'(u[t,c]):
 *
 *     dbias[c]  += Σ_t du[t,c]
 *     dw[c,k]   += Σ_t du[t,c] · x[t − K + 1 + k, c]           (within the sequence)
 *     dx[j,c]   += Σ_k du[j + K − 1 − k, c] · w[c,k]           (terms past the sequence's end are 0)
 *
 * The loop runs over blocks of channels, so every dw, dbias and dx element
 * has one owner and sums in a fixed order (b, then s): the result does not
 * depend on the thread count. du of one sequence and block is scratch. */
enum { CONV_CB = 32 };
void FN(tn_mamba_conv1d_backward)(real *dx, real *dw, real *dbias, const real *dy, const real *x, int ldx,
                                  const real *w, const real *bias, int B, int S, int C, int K) {
    if (!dx && !dw && !dbias) return;
    int nblocks = (C + CONV_CB - 1) / CONV_CB;
#pragma omp parallel if ((int64_t)B * S * C * K >= PAR_MIN)
    {
        real *du = scratch((size_t)S * CONV_CB, sizeof(real));
        real *acc_w = scratch((size_t)CONV_CB * K, sizeof(real));
        real acc_b[CONV_CB];
#pragma omp for
        for (int blk = 0; blk < nblocks; blk++) {
            int c0 = blk * CONV_CB, nc = C - c0 < CONV_CB ? C - c0 : CONV_CB;
            memset(acc_w, 0, (size_t)CONV_CB * K * sizeof(real));
            memset(acc_b, 0, sizeof acc_b);
            for (int b = 0; b < B; b++) {
                const real *xb = x + (size_t)b * S * ldx;
                for (int s = 0; s < S; s++) {
                    const real *dyt = dy + ((size_t)b * S + s) * C;
                    for (int i = 0; i < nc; i++) {
                        int c = c0 + i;
                        real u = 0;
                        for (int k = 0; k < K; k++) {
                            int j = s - K + 1 + k;
                            if (j >= 0) u += w[(size_t)c * K + k] * xb[(size_t)j * ldx + c];
                        }
                        if (bias) u += bias[c];
                        du[(size_t)s * CONV_CB + i] = dyt[c] * mamba_dsilu(u);
                    }
                }
                for (int s = 0; s < S; s++)
                    for (int i = 0; i < nc; i++) {
                        int c = c0 + i;
                        real d = du[(size_t)s * CONV_CB + i];
                        acc_b[i] += d;
                        for (int k = 0; k < K; k++) {
                            int j = s - K + 1 + k;
                            if (j >= 0) acc_w[i * K + k] += d * xb[(size_t)j * ldx + c];
                        }
                    }
                if (dx) {
                    real *dxb = dx + (size_t)b * S * ldx;
                    for (int j = 0; j < S; j++)
                        for (int i = 0; i < nc; i++) {
                            int c = c0 + i;
                            real g = 0;
                            for (int k = 0; k < K; k++) {
                                int s = j + K - 1 - k;
                                if (s < S) g += du[(size_t)s * CONV_CB + i] * w[(size_t)c * K + k];
                            }
                            dxb[(size_t)j * ldx + c] += g;
                        }
                }
            }
            for (int i = 0; i < nc; i++) {
                if (dbias) dbias[c0 + i] += acc_b[i];
                if (dw)
                    for (int k = 0; k < K; k++) dw[(size_t)(c0 + i) * K + k] += acc_w[i * K + k];
            }
        }
        free(du);
        free(acc_w);
    }
}

/* ---- dt: softplus with bias, then time_step_limit ---------------------- */

/* v = dt_raw + dt_bias; softplus as torch.nn.functional.softplus (beta 1,
 * threshold 20): v itself above 20, log1p(e^v) otherwise. */
static inline real mamba_softplus(real v) { return v > 20 ? v : LOG1P(EXP(v)); }

/* Forward: dt[t,h] = clamp(softplus(dt_raw[t,h] + dt_bias[h]), lo, hi). The
 * clamp is transformers' torch.clamp(dt, *time_step_limit); with the default
 * (0, inf) it changes nothing (softplus ≥ 0). */
void FN(tn_mamba_dt_forward)(real *dt, const real *dt_raw, int ld, const real *dt_bias, int T, int H, real lo,
                             real hi) {
    for (int t = 0; t < T; t++)
        for (int h = 0; h < H; h++) {
            real sp = mamba_softplus(dt_raw[(size_t)t * ld + h] + dt_bias[h]);
            dt[(size_t)t * H + h] = sp < lo ? lo : sp > hi ? hi : sp;
        }
}

/* Backward: softplus'(v) = σ(v) (torch: 1 above the threshold); torch.clamp
 * passes the gradient where lo ≤ softplus(v) ≤ hi (both ends inclusive):
 *
 *     g = ddt · σ(v) · [lo ≤ softplus(v) ≤ hi]
 *     ddt_raw[t,h] += g,   ddt_bias[h] += Σ_t g                                */
void FN(tn_mamba_dt_backward)(real *ddt_raw, int ld, real *ddt_bias, const real *ddt, const real *dt_raw,
                              const real *dt_bias, int T, int H, real lo, real hi) {
    if (!ddt_raw && !ddt_bias) return;
    real *acc = scratch((size_t)H, sizeof(real));
    memset(acc, 0, (size_t)H * sizeof(real));
    for (int t = 0; t < T; t++)
        for (int h = 0; h < H; h++) {
            real v = dt_raw[(size_t)t * ld + h] + dt_bias[h], sp = mamba_softplus(v);
            real g = sp < lo || sp > hi ? 0 : ddt[(size_t)t * H + h] * (v > 20 ? 1 : mamba_sigmoid(v));
            if (ddt_raw) ddt_raw[(size_t)t * ld + h] += g;
            acc[h] += g;
        }
    if (ddt_bias)
        for (int h = 0; h < H; h++) ddt_bias[h] += acc[h];
    free(acc);
}

/* ---- the selective scan ------------------------------------------------ */

/* Forward. For each sequence b and head h (group g = h / (H/G), the
 * repeat_interleave of transformers: consecutive heads share a group), with
 * A = −exp(A_log[h]) and the state h_t [P, N] starting at h0 (or 0):
 *
 *     a_t        = exp(dt_t · A)
 *     h_t[p][n]  = a_t · h_{t−1}[p][n] + (dt_t · x_t[p]) · B_t[n]
 *     y_t[p]     = Σ_n C_t[n] · h_t[p][n] + D[h] · x_t[p]
 *
 * (transformers multiplies x by dt first, as here, and adds D·x last.) At the
 * end of each chunk of `chunk` positions (and at the last position) the state
 * is copied to states[b, chunk index, h]: ceil(S/chunk)·H·P·N values per
 * sequence, which is what the memory plan prices as "ssm chunk states".
 * (b, h) pairs are independent: one per loop iteration, threads never share
 * an output. */
void FN(tn_mamba_scan_forward)(real *y, real *states, const real *x, int ldx, const real *dt, const real *A_log,
                               const real *Bm, const real *Cm, int ldbc, const real *D, const real *h0, int B, int S,
                               int H, int P, int G, int N, int chunk) {
    int nchunks = (S + chunk - 1) / chunk, hpg = H / G;
    size_t PN = (size_t)P * N;
#pragma omp parallel if ((int64_t)B * S * H * PN >= PAR_MIN)
    {
        real *hs = scratch(PN, sizeof(real));
#pragma omp for
        for (int bh = 0; bh < B * H; bh++) {
            int b = bh / H, h = bh % H, g = h / hpg;
            real A = -EXP(A_log[h]);
            if (h0)
                memcpy(hs, h0 + (size_t)bh * PN, PN * sizeof(real));
            else
                memset(hs, 0, PN * sizeof(real));
            for (int s = 0; s < S; s++) {
                size_t t = (size_t)b * S + s;
                real d = dt[t * H + h], a = EXP(d * A);
                const real *xt = x + t * ldx + (size_t)h * P;
                const real *Bt = Bm + t * ldbc + (size_t)g * N, *Ct = Cm + t * ldbc + (size_t)g * N;
                real *yt = y + t * H * P + (size_t)h * P;
                for (int p = 0; p < P; p++) {
                    real dxp = d * xt[p], acc = 0;
                    real *hp = hs + (size_t)p * N;
#pragma omp simd reduction(+ : acc)
                    for (int n = 0; n < N; n++) {
                        hp[n] = a * hp[n] + dxp * Bt[n];
                        acc += Ct[n] * hp[n];
                    }
                    yt[p] = acc + D[h] * xt[p];
                }
                if (states && ((s + 1) % chunk == 0 || s == S - 1))
                    memcpy(states + (((size_t)b * nchunks + s / chunk) * H + h) * PN, hs, PN * sizeof(real));
            }
        }
        free(hs);
    }
}

/* One step of the recurrence for head h (group g) at token t, from hprev
 * into hcur (the same buffer allowed): hcur = a·hprev + (dt·x) ⊗ B. The
 * forward's own loop does the same arithmetic in the same order, so states
 * recomputed here equal the forward's bit for bit. */
static inline void scan_step(real *hcur, const real *hprev, int64_t t, int h, int g, real A, const real *x, int ldx,
                             const real *dt, const real *Bm, int ldbc, int H, int P, int N) {
    real d = dt[t * H + h], a = EXP(d * A);
    const real *xt = x + t * ldx + (size_t)h * P, *Bt = Bm + t * ldbc + (size_t)g * N;
    for (int p = 0; p < P; p++) {
        real dxp = d * xt[p], *hc = hcur + (size_t)p * N;
        const real *hv = hprev + (size_t)p * N;
#pragma omp simd
        for (int n = 0; n < N; n++) hc[n] = a * hv[n] + dxp * Bt[n];
    }
}

/* Positions per sub-block in backward: a chunk's states are recomputed twice,
 * first keeping one state per sub-block, then a sub-block at a time keeping
 * all of its states, so the scratch per thread is chunk/SCAN_SUB + SCAN_SUB + 1
 * states (33 states, 1 MiB at P 64, N 128) rather than chunk + 1 (8 MiB).
 * Measured at Granite 4.0-H-tiny's shape (48 heads, P 64, N 128, S 512):
 * 5-15% faster than keeping the whole chunk despite the extra pass (the
 * states stay near L2). Forward 43 ms, backward 147 ms per layer on one
 * core (float, SSE2 vectors). */
#define SCAN_SUB 16

/* Backward: the adjoint of the recurrence, run from the last position to the
 * first. With γ_t = ∂L/∂h_t (everything h_t feeds: y_t and h_{t+1}):
 *
 *     γ_t        = a_{t+1}·γ_{t+1} + dy_t ⊗ C_t                  (γ_{S} = 0)
 *     dC_t[n]   += Σ_p dy_t[p] · h_t[p][n]
 *     dD        += Σ_p dy_t[p] · x_t[p]
 *     e_t[p]     = Σ_n γ_t[p][n] · B_t[n]
 *     dx_t[p]   += D·dy_t[p] + dt_t · e_t[p]
 *     dB_t[n]   += dt_t · Σ_p γ_t[p][n] · x_t[p]
 *     σ_t        = Σ_{p,n} γ_t[p][n] · h_{t−1}[p][n]              (∂L/∂a_t)
 *     ddt_t     += Σ_p x_t[p]·e_t[p] + A·a_t·σ_t                   (∂a_t/∂dt_t = A·a_t)
 *     dA        += dt_t·a_t·σ_t,   dA_log = dA · A                 (∂A/∂A_log = A)
 *
 * Groups sum dB and dC over their heads. h_t and h_{t−1} come from the
 * forward's saved chunk states: chunk c starts from the state saved at the
 * end of chunk c − 1 (h0 or 0 for chunk 0) and is recomputed (twice, in
 * sub-blocks of SCAN_SUB, see above), so the extra memory is a fraction of a
 * chunk's states per thread, never the sequence's. The recomputed states
 * equal the forward's bit for bit (same operations in the same order).
 *
 * Order: sequences, then chunks backwards, one parallel loop over heads per
 * chunk; every head owns its dx, ddt, dA_log, dD entries, and writes its dB,
 * dC rows to per-head scratch that is summed over the group's heads in head
 * order after the loop: the bits do not depend on the thread count. */
void FN(tn_mamba_scan_backward)(real *dx, real *ddt, real *dA_log, real *dB, real *dC, real *dD, const real *dy,
                                const real *states, const real *x, int ldx, const real *dt, const real *A_log,
                                const real *Bm, const real *Cm, int ldbc, const real *D, const real *h0, int B, int S,
                                int H, int P, int G, int N, int chunk) {
    if (!dx && !ddt && !dA_log && !dB && !dC && !dD) return;
    int nchunks = (S + chunk - 1) / chunk, hpg = H / G, L = S < chunk ? S : chunk;
    size_t PN = (size_t)P * N;
    real *gam = scratch((size_t)H * PN, sizeof(real)); /* γ carried into the chunk, per head */
    real *acc_a = scratch((size_t)H, sizeof(real)), *acc_d = scratch((size_t)H, sizeof(real));
    real *dBh = dB ? scratch((size_t)L * H * N, sizeof(real)) : NULL; /* [L, H, N] per-head parts */
    real *dCh = dC ? scratch((size_t)L * H * N, sizeof(real)) : NULL;
    memset(acc_a, 0, (size_t)H * sizeof(real));
    memset(acc_d, 0, (size_t)H * sizeof(real));
    for (int b = 0; b < B; b++) {
        memset(gam, 0, (size_t)H * PN * sizeof(real));
        for (int c = nchunks - 1; c >= 0; c--) {
            int s0 = c * chunk, s1 = s0 + chunk < S ? s0 + chunk : S, len = s1 - s0;
#pragma omp parallel if ((int64_t)len * H * PN >= PAR_MIN)
            {
                int nsub = (len + SCAN_SUB - 1) / SCAN_SUB;
                real *starts = scratch((size_t)nsub * PN, sizeof(real)); /* h before each sub-block */
                real *hist = scratch((size_t)(SCAN_SUB + 1) * PN, sizeof(real)); /* one sub-block's states */
                real *e = scratch((size_t)P, sizeof(real)), *dBnull = scratch((size_t)N, sizeof(real));
#pragma omp for
                for (int h = 0; h < H; h++) {
                    int g = h / hpg;
                    real A = -EXP(A_log[h]);
                    if (c > 0)
                        memcpy(hist, states + (((size_t)b * nchunks + c - 1) * H + h) * PN, PN * sizeof(real));
                    else if (h0)
                        memcpy(hist, h0 + ((size_t)b * H + h) * PN, PN * sizeof(real));
                    else
                        memset(hist, 0, PN * sizeof(real));
                    for (int i = 0; i < len; i++) { /* the forward again, keeping each sub-block's start */
                        if (i % SCAN_SUB == 0) memcpy(starts + (size_t)(i / SCAN_SUB) * PN, hist, PN * sizeof(real));
                        scan_step(hist, hist, b * S + s0 + i, h, g, A, x, ldx, dt, Bm, ldbc, H, P, N);
                    }
                    real *gm = gam + (size_t)h * PN, da = 0, dd = 0;
                    for (int sb = nsub - 1; sb >= 0; sb--) {
                        int i0 = sb * SCAN_SUB, i1 = i0 + SCAN_SUB < len ? i0 + SCAN_SUB : len;
                        memcpy(hist, starts + (size_t)sb * PN, PN * sizeof(real));
                        for (int i = i0; i < i1; i++) /* and again, keeping every state of the sub-block */
                            scan_step(hist + (size_t)(i - i0 + 1) * PN, hist + (size_t)(i - i0) * PN, b * S + s0 + i, h,
                                      g, A, x, ldx, dt, Bm, ldbc, H, P, N);
                        for (int i = i1 - 1; i >= i0; i--) {
                            size_t t = (size_t)b * S + s0 + i;
                            real d = dt[t * H + h], a = EXP(d * A);
                            const real *xt = x + t * ldx + (size_t)h * P;
                            const real *Bt = Bm + t * ldbc + (size_t)g * N, *Ct = Cm + t * ldbc + (size_t)g * N;
                            const real *dyt = dy + t * H * P + (size_t)h * P;
                            const real *hcur = hist + (size_t)(i - i0 + 1) * PN, *hprev = hist + (size_t)(i - i0) * PN;
                            real *dBr = dBh ? dBh + ((size_t)i * H + h) * N : dBnull; /* dBnull: not wanted */
                            real *dCr = dCh ? dCh + ((size_t)i * H + h) * N : NULL;
                            memset(dBr, 0, (size_t)N * sizeof(real));
                            if (dCr) memset(dCr, 0, (size_t)N * sizeof(real));
                            real sig = 0, xe = 0;
                            for (int p = 0; p < P; p++) {
                                /* one row of γ: add dy ⊗ C, take its sums, leave a·γ for t − 1 */
                                real *gp = gm + (size_t)p * N, ep = 0, dyp = dyt[p], xp = xt[p];
                                const real *hv = hprev + (size_t)p * N;
#pragma omp simd reduction(+ : ep, sig)
                                for (int n = 0; n < N; n++) {
                                    real gn = gp[n] + dyp * Ct[n];
                                    ep += gn * Bt[n];
                                    sig += gn * hv[n];
                                    dBr[n] += gn * xp;
                                    gp[n] = a * gn;
                                }
                                if (dCr) {
                                    const real *hc = hcur + (size_t)p * N;
#pragma omp simd
                                    for (int n = 0; n < N; n++) dCr[n] += dyp * hc[n];
                                }
                                e[p] = ep;
                                xe += xp * ep;
                                dd += dyp * xp;
                            }
                            if (dx) {
                                real *dxt = dx + t * ldx + (size_t)h * P;
                                for (int p = 0; p < P; p++) dxt[p] += D[h] * dyt[p] + d * e[p];
                            }
                            if (dBh)
                                for (int n = 0; n < N; n++) dBr[n] *= d;
                            if (ddt) ddt[t * H + h] += xe + A * a * sig;
                            da += d * a * sig;
                        }
                    }
                    acc_a[h] += da;
                    acc_d[h] += dd;
                }
                free(starts);
                free(hist);
                free(e);
                free(dBnull);
            }
            for (int i = 0; i < len; i++) { /* the group's heads, in order */
                size_t t = (size_t)b * S + s0 + i;
                for (int g = 0; g < G; g++)
                    for (int n = 0; n < N; n++) {
                        real sb = 0, sc = 0;
                        for (int h = g * hpg; h < (g + 1) * hpg; h++) {
                            if (dBh) sb += dBh[((size_t)i * H + h) * N + n];
                            if (dCh) sc += dCh[((size_t)i * H + h) * N + n];
                        }
                        if (dB) dB[t * ldbc + (size_t)g * N + n] += sb;
                        if (dC) dC[t * ldbc + (size_t)g * N + n] += sc;
                    }
            }
        }
    }
    for (int h = 0; h < H; h++) {
        if (dA_log) dA_log[h] += acc_a[h] * -EXP(A_log[h]);
        if (dD) dD[h] += acc_d[h];
    }
    free(gam);
    free(acc_a);
    free(acc_d);
    free(dBh);
    free(dCh);
}

/* ---- gated RMSNorm in groups ------------------------------------------- */

/* Forward (BambaRMSNormGated with a gate, norm_before_gate = False), one row
 * and group of gs = group_size channels at a time:
 *
 *     g_c     = x_c · silu(z_c)
 *     rstd    = 1 / sqrt(mean_{c in group} g_c² + eps)
 *     y_c     = w_c · (g_c · rstd)
 *
 * transformers takes the gate in fp32 before the norm and normalises over
 * the whole row (gs = C); rstd [T, C/gs] is saved for backward, g is
 * recomputed there. */
void FN(tn_mamba_gated_norm_forward)(real *y, real *rstd, const real *x, const real *z, int ldz, const real *w, int T,
                                     int C, int group_size, real eps) {
    int ng = C / group_size;
#pragma omp parallel for if ((int64_t)T * C >= PAR_MIN)
    for (int t = 0; t < T; t++)
        for (int j = 0; j < ng; j++) {
            const real *xt = x + (size_t)t * C + (size_t)j * group_size, *zt = z + (size_t)t * ldz + (size_t)j * group_size;
            const real *wj = w + (size_t)j * group_size;
            real *yt = y + (size_t)t * C + (size_t)j * group_size;
            real ss = 0;
            for (int c = 0; c < group_size; c++) {
                real g = xt[c] * mamba_silu(zt[c]);
                ss += g * g;
            }
            real r = 1 / SQRT(ss / group_size + eps);
            rstd[(size_t)t * ng + j] = r;
            for (int c = 0; c < group_size; c++) yt[c] = wj[c] * ((xt[c] * mamba_silu(zt[c])) * r);
        }
}

/* Backward. With ĝ = g·rstd, as in rmsnorm_impl.h with g for x:
 *
 *     dg_c  = rstd · (dy_c w_c − ĝ_c · m),   m = (1/gs) Σ_{k in group} dy_k w_k ĝ_k
 *     dx_c += dg_c · silu(z_c)
 *     dz_c += dg_c · x_c · silu'(z_c)
 *     dw_c += Σ_t dy_tc · ĝ_tc
 *
 * dx, dz run over rows; dw over blocks of columns, each summing its rows in
 * order. */
void FN(tn_mamba_gated_norm_backward)(real *dx, real *dz, real *dw, const real *dy, const real *x, const real *z,
                                      int ldz, const real *w, const real *rstd, int T, int C, int group_size) {
    int ng = C / group_size;
    if (dx || dz) {
#pragma omp parallel for if ((int64_t)T * C >= PAR_MIN)
        for (int t = 0; t < T; t++)
            for (int j = 0; j < ng; j++) {
                size_t o = (size_t)t * C + (size_t)j * group_size, oz = (size_t)t * ldz + (size_t)j * group_size;
                const real *xt = x + o, *zt = z + oz, *dyt = dy + o, *wj = w + (size_t)j * group_size;
                real r = rstd[(size_t)t * ng + j], m = 0;
                for (int c = 0; c < group_size; c++) m += dyt[c] * wj[c] * (xt[c] * mamba_silu(zt[c]) * r);
                m /= group_size;
                for (int c = 0; c < group_size; c++) {
                    real sz = mamba_silu(zt[c]), gh = xt[c] * sz * r;
                    real dg = r * (dyt[c] * wj[c] - gh * m);
                    if (dx) dx[o + c] += dg * sz;
                    if (dz) dz[oz + c] += dg * xt[c] * mamba_dsilu(zt[c]);
                }
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
                const real *xt = x + (size_t)t * C, *zt = z + (size_t)t * ldz, *dyt = dy + (size_t)t * C;
                for (int c = c0; c < c1; c++)
                    sum[c - c0] += dyt[c] * ((xt[c] * mamba_silu(zt[c])) * rstd[(size_t)t * ng + c / group_size]);
            }
            for (int c = c0; c < c1; c++) dw[c] += sum[c - c0];
        }
    }
}

#undef LOG1P
