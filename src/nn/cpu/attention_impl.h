/* attention_impl.h - causal multi-head attention with grouped key/value heads
 * (GQA), an optional sliding window and an optional soft-cap on the scores,
 * computed one query row at a time: the [S, S] score matrix never exists.
 * Included by ops_impl.h.
 *
 * Layout: token t = b·S + i; q[t, h, :] is q + (t·nh + h)·hd, k and v the
 * same with nkv heads; query head h reads kv head h / (nh/nkv).
 *
 * For speed the inner loops run over keys (or queries) rather than over the
 * head dimension: each (sequence, kv head) block of K and V (and, in backward,
 * of Q and dout) is first transposed to [hd, S] in a shared scratch, so a row
 * of scores is hd axpy's over contiguous memory instead of S short dot
 * products. Scratch is O(S·hd) shared plus O(S + hd) per thread. */

/* The keys query row i sees: j in [first_key(i), i]; the query rows key j is
 * seen by: i in [j, last_query(j)]. window = 0 means no window. */
static inline int first_key(int i, int window) { return window > 0 && i - window + 1 > 0 ? i - window + 1 : 0; }
static inline int last_query(int j, int S, int window) {
    return window > 0 && j + window - 1 < S - 1 ? j + window - 1 : S - 1;
}

/* s[n] = Σ_d a[d] · Mt[d, j0 + n] for n < count: a row of products against
 * count consecutive columns of a transposed block Mt [hd, S]. */
static void dot_columns(real *s, const real *a, const real *Mt, int S, int hd, int j0, int count) {
    for (int n = 0; n < count; n++) s[n] = 0;
    for (int d = 0; d < hd; d++) {
        real ad = a[d];
        const real *col = Mt + (size_t)d * S + j0;
        for (int n = 0; n < count; n++) s[n] += ad * col[n];
    }
}

/* Mt[d, i] = mul · M[(b·S + i)·heads + head, d], i < S: one head of one
 * sequence, transposed; the rows are split among the team's threads. */
static void transpose_head(real *Mt, const real *M, int b, int S, int heads, int head, int hd, real mul) {
#pragma omp for
    for (int i = 0; i < S; i++) {
        const real *row = M + (((size_t)b * S + i) * heads + head) * hd;
        for (int d = 0; d < hd; d++) Mt[(size_t)d * S + i] = mul * row[d];
    }
}

/* Scores after the optional soft-cap: s ← c·tanh(s/c). */
static inline void cap_scores(real *s, int count, real softcap) {
    if (softcap > 0)
        for (int n = 0; n < count; n++) s[n] = softcap * TANH(s[n] / softcap);
}

/* Forward. For query row i of head h (kv head g = h / (nh/nkv)):
 *
 *     s_ij   = scale · q_i · k_j                     j in [first_key(i), i]
 *     s_ij   ← c · tanh(s_ij / c)                    when softcap c > 0
 *     lse_i  = log Σ_j exp(s_ij)                     (saved: lse[t·nh + h])
 *     out_i  = Σ_j exp(s_ij − lse_i) · v_j
 *
 * with the usual max subtraction. Rows are independent, so they are shared
 * dynamically among threads (causal rows differ in length). */
void FN(tn_attention_forward)(real *out, real *lse, const real *q, const real *k, const real *v, int B, int S,
                              int nh, int nkv, int hd, real scale, real softcap, int window) {
    if (B <= 0 || S <= 0 || nh <= 0 || hd <= 0) return;
    assert(nkv > 0 && nh % nkv == 0);
    int group = nh / nkv;
    real *Kt = scratch((size_t)hd * S, sizeof(real));
#pragma omp parallel
    {
        real *s = scratch(S, sizeof(real)), *qs = scratch(hd, sizeof(real));
        for (int b = 0; b < B; b++) {
            for (int g = 0; g < nkv; g++) {
                transpose_head(Kt, k, b, S, nkv, g, hd, 1);
#pragma omp for schedule(dynamic, 8)
                for (int r = 0; r < group * S; r++) {
                    int h = g * group + r / S, i = r % S;
                    size_t t = (size_t)b * S + i;
                    const real *qi = q + (t * nh + h) * hd;
                    real *oi = out + (t * nh + h) * hd;
                    int lo = first_key(i, window), n = i - lo + 1;
                    for (int d = 0; d < hd; d++) qs[d] = scale * qi[d];
                    dot_columns(s, qs, Kt, S, hd, lo, n);
                    cap_scores(s, n, softcap);
                    real m = s[0];
                    for (int j = 1; j < n; j++) m = s[j] > m ? s[j] : m;
                    real sum = 0;
                    for (int j = 0; j < n; j++) {
                        s[j] = EXP(s[j] - m);
                        sum += s[j];
                    }
                    for (int d = 0; d < hd; d++) oi[d] = 0;
                    for (int j = 0; j < n; j++) {
                        const real *vj = v + (((size_t)b * S + lo + j) * nkv + g) * hd;
                        real p = s[j];
                        for (int d = 0; d < hd; d++) oi[d] += p * vj[d];
                    }
                    real inv = 1 / sum;
                    for (int d = 0; d < hd; d++) oi[d] *= inv;
                    lse[t * nh + h] = m + LOG(sum);
                }
            }
        }
        free(s);
        free(qs);
    }
    free(Kt);
}

/* Backward, the flash-attention recurrences, with p rebuilt from the saved
 * logsumexp:
 *
 *     D_i    = Σ_d dout_i · out_i
 *     p_ij   = exp(s_ij − lse_i)
 *     dp_ij  = dout_i · v_j
 *     ds_ij  = p_ij (dp_ij − D_i) · (1 − (s_ij/c)²)    (the factor only when soft-capped)
 *     dq_i  += scale Σ_j ds_ij k_j
 *     dk_j  += scale Σ_i ds_ij q_i
 *     dv_j  += Σ_i p_ij dout_i
 *
 * and a kv head's dk, dv sum over the query heads of its group. Two passes,
 * each writing only what its own loop index owns, so no locks and a fixed
 * summation order: pass 1 runs over query rows (dq_i sums over its keys),
 * pass 2 over keys (dk_j, dv_j sum over the group's heads, then over their
 * query rows). s and dp are therefore computed twice; the products are the
 * same ones in the same order, so both passes see identical values. */
void FN(tn_attention_backward)(real *dq, real *dk, real *dv, const real *dout, const real *out, const real *lse,
                               const real *q, const real *k, const real *v, int B, int S, int nh, int nkv, int hd,
                               real scale, real softcap, int window) {
    if (B <= 0 || S <= 0 || nh <= 0 || hd <= 0 || (!dq && !dk && !dv)) return;
    assert(nkv > 0 && nh % nkv == 0);
    int group = nh / nkv;
    size_t T = (size_t)B * S;
    real *Dsum = scratch(T * nh, sizeof(real));
    real *Kt = dq ? scratch((size_t)hd * S, sizeof(real)) : NULL, *Vt = dq ? scratch((size_t)hd * S, sizeof(real)) : NULL;
    int need_kv = dk || dv;
    size_t block = (size_t)group * hd * S;
    real *Qt = need_kv ? scratch(block, sizeof(real)) : NULL, *dOt = need_kv ? scratch(block, sizeof(real)) : NULL;
    real *Lg = need_kv ? scratch((size_t)group * S, sizeof(real)) : NULL;
    real *Dg = need_kv ? scratch((size_t)group * S, sizeof(real)) : NULL;
#pragma omp parallel
    {
        real *s = scratch(S, sizeof(real)), *dp = scratch(S, sizeof(real));
        real *qs = scratch(hd, sizeof(real)), *acc = scratch(hd, sizeof(real)), *acc2 = scratch(hd, sizeof(real));
#pragma omp for
        for (size_t r = 0; r < T * nh; r++) {
            const real *o = out + r * hd, *g = dout + r * hd;
            real sum = 0;
            for (int d = 0; d < hd; d++) sum += g[d] * o[d];
            Dsum[r] = sum;
        }
        for (int b = 0; b < B; b++) {
            for (int g = 0; g < nkv; g++) {
                if (dq) {
                    /* Pass 1: dq_i, one query row at a time. */
                    transpose_head(Kt, k, b, S, nkv, g, hd, 1);
                    transpose_head(Vt, v, b, S, nkv, g, hd, 1);
#pragma omp for schedule(dynamic, 8)
                    for (int r = 0; r < group * S; r++) {
                        int h = g * group + r / S, i = r % S;
                        size_t t = (size_t)b * S + i;
                        const real *qi = q + (t * nh + h) * hd, *gi = dout + (t * nh + h) * hd;
                        int lo = first_key(i, window), n = i - lo + 1;
                        for (int d = 0; d < hd; d++) qs[d] = scale * qi[d];
                        dot_columns(s, qs, Kt, S, hd, lo, n);
                        cap_scores(s, n, softcap);
                        dot_columns(dp, gi, Vt, S, hd, lo, n);
                        real L = lse[t * nh + h], D = Dsum[t * nh + h];
                        for (int j = 0; j < n; j++) {
                            real ds = EXP(s[j] - L) * (dp[j] - D);
                            if (softcap > 0) ds *= 1 - (s[j] / softcap) * (s[j] / softcap);
                            s[j] = ds;
                        }
                        for (int d = 0; d < hd; d++) acc[d] = 0;
                        for (int j = 0; j < n; j++) {
                            const real *kj = k + (((size_t)b * S + lo + j) * nkv + g) * hd;
                            real ds = s[j];
                            for (int d = 0; d < hd; d++) acc[d] += ds * kj[d];
                        }
                        real *dqi = dq + (t * nh + h) * hd;
                        for (int d = 0; d < hd; d++) dqi[d] += scale * acc[d];
                    }
                }
                if (need_kv) {
                    /* Pass 2: dk_j and dv_j, one key at a time, over the group's query heads. */
                    for (int e = 0; e < group; e++) {
                        int h = g * group + e;
                        transpose_head(Qt + (size_t)e * hd * S, q, b, S, nh, h, hd, scale);
                        transpose_head(dOt + (size_t)e * hd * S, dout, b, S, nh, h, hd, 1);
#pragma omp for
                        for (int i = 0; i < S; i++) {
                            size_t r = ((size_t)b * S + i) * nh + h;
                            Lg[(size_t)e * S + i] = lse[r];
                            Dg[(size_t)e * S + i] = Dsum[r];
                        }
                    }
#pragma omp for schedule(dynamic, 8)
                    for (int j = 0; j < S; j++) {
                        size_t tj = (size_t)b * S + j;
                        const real *kj = k + (tj * nkv + g) * hd, *vj = v + (tj * nkv + g) * hd;
                        int n = last_query(j, S, window) - j + 1;
                        for (int d = 0; d < hd; d++) acc[d] = acc2[d] = 0; /* acc: dk_j / scale, acc2: dv_j */
                        for (int e = 0; e < group; e++) {
                            int h = g * group + e;
                            dot_columns(s, kj, Qt + (size_t)e * hd * S, S, hd, j, n);
                            cap_scores(s, n, softcap);
                            dot_columns(dp, vj, dOt + (size_t)e * hd * S, S, hd, j, n);
                            const real *L = Lg + (size_t)e * S + j, *D = Dg + (size_t)e * S + j;
                            for (int m = 0; m < n; m++) {
                                real p = EXP(s[m] - L[m]);
                                real ds = p * (dp[m] - D[m]);
                                if (softcap > 0) ds *= 1 - (s[m] / softcap) * (s[m] / softcap);
                                s[m] = ds;
                                dp[m] = p;
                            }
                            for (int m = 0; m < n; m++) {
                                size_t r = ((size_t)b * S + j + m) * nh + h;
                                const real *qi = q + r * hd, *gi = dout + r * hd;
                                real ds = s[m], p = dp[m];
                                for (int d = 0; d < hd; d++) {
                                    acc[d] += ds * qi[d];
                                    acc2[d] += p * gi[d];
                                }
                            }
                        }
                        if (dk)
                            for (int d = 0; d < hd; d++) dk[(tj * nkv + g) * hd + d] += scale * acc[d];
                        if (dv)
                            for (int d = 0; d < hd; d++) dv[(tj * nkv + g) * hd + d] += acc2[d];
                    }
                }
            }
        }
        free(s);
        free(dp);
        free(qs);
        free(acc);
        free(acc2);
    }
    free(Dsum);
    free(Kt);
    free(Vt);
    free(Qt);
    free(dOt);
    free(Lg);
    free(Dg);
}
