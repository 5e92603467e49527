/* attention_impl.h - causal multi-head attention with grouped key/value heads
 * (GQA), an optional sliding window and an optional soft-cap on the scores.
 * Included by ops_impl.h.
 *
 * Layout: token t = b·S + i; q[t, h, :] is q + (t·nh + h)·hd, k and v the same
 * with nkv heads; query head h reads kv head g = h / (nh/nkv).
 *
 * The work goes in blocks of QB query rows: a block [i0, i1) sees the keys
 * [first_key(i0), i1), so its scores are one [QB, n] matrix product, its
 * softmax is taken in place, and its output is a second product. Products go
 * through BLAS (the strided q, k, v rows are read in place through the
 * leading dimensions), which is where the speed comes from; the masked
 * corners of a block are computed and zeroed, about QB/(2S) extra work (and
 * QB/window with a sliding window). Scratch: one [QB, S] block per thread in
 * forward, two in backward, plus 2·nh·S·hd values of per-head dk, dv slices
 * when heads share a kv head; never [S, S]. */

enum { QB = 64 };

/* Below this many multiply-adds (B·nh·S²·hd) the whole call is a few
 * microseconds and stays on one thread. */
#define ATTN_PAR_MIN (1 << 18)

/* The keys query row i sees: j in [first_key(i), i]. window = 0: no window. */
static inline int first_key(int i, int window) { return window > 0 && i - window + 1 > 0 ? i - window + 1 : 0; }

/* Scores of query rows [i0, i1) of head h against keys [lo, i1) of its kv
 * head g, in sequence b, into s [rows, n] (n = i1 − lo):
 *
 *     s_ij = scale · q_i · k_j,   then c · tanh(s_ij / c) when softcap c > 0,
 *
 * entries outside [first_key(i), i] left for the caller to mask. */
static void block_scores(real *s, const real *q, const real *k, int b, int S, int nh, int nkv, int hd, int h, int g,
                         int i0, int i1, int lo, real scale, real softcap) {
    int rows = i1 - i0, n = i1 - lo;
    const real *qb = q + (((size_t)b * S + i0) * nh + h) * hd, *kb = k + (((size_t)b * S + lo) * nkv + g) * hd;
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, rows, n, hd, scale, qb, nh * hd, kb, nkv * hd, 0, s, n);
    if (softcap > 0)
        for (size_t e = 0; e < (size_t)rows * n; e++) s[e] = softcap * TANH(s[e] / softcap);
}

/* OpenBLAS's own threads must stay out of products issued from inside our
 * parallel loops. The pthreads build is told to use one thread for the
 * duration (the OpenMP build does this by itself; a sequential one has no
 * threads); returns what to restore. */
static int blas_single_thread_begin(void) {
    if (openblas_get_parallel() != 1) return 0;
    int n = openblas_get_num_threads();
    openblas_set_num_threads(1);
    return n;
}

static void blas_single_thread_end(int saved) {
    if (saved > 0) openblas_set_num_threads(saved);
}

/* Forward. For query row i of head h:
 *
 *     s_ij   = scale · q_i · k_j                     j in [first_key(i), i]
 *     s_ij   ← c · tanh(s_ij / c)                    when softcap c > 0
 *     lse_i  = log Σ_j exp(s_ij)                     (saved: lse[t·nh + h])
 *     out_i  = Σ_j exp(s_ij − lse_i) · v_j
 *
 * with the usual max subtraction. Blocks of (sequence, head, query block) are
 * independent and shared among threads. */
void FN(tn_attention_forward)(real *out, real *lse, const real *q, const real *k, const real *v, int B, int S,
                              int nh, int nkv, int hd, real scale, real softcap, int window) {
    if (B <= 0 || S <= 0 || nh <= 0 || hd <= 0) return;
    assert(nkv > 0 && nh % nkv == 0);
    int group = nh / nkv, nblk = (S + QB - 1) / QB;
    int threads = omp_get_max_threads(), saved = blas_single_thread_begin();
#pragma omp parallel num_threads(threads) if ((double)B * nh * S * S * hd >= ATTN_PAR_MIN)
    {
        real *s = scratch((size_t)QB * S, sizeof(real));
#pragma omp for schedule(dynamic, 1)
        for (int unit = 0; unit < B * nh * nblk; unit++) {
            /* Last blocks first: they are the longest. */
            int blk = nblk - 1 - unit % nblk, h = unit / nblk % nh, b = unit / nblk / nh, g = h / group;
            int i0 = blk * QB, i1 = i0 + QB < S ? i0 + QB : S, lo = first_key(i0, window), n = i1 - lo;
            block_scores(s, q, k, b, S, nh, nkv, hd, h, g, i0, i1, lo, scale, softcap);
            for (int i = i0; i < i1; i++) {
                real *si = s + (size_t)(i - i0) * n;
                int j0 = first_key(i, window) - lo, j1 = i - lo; /* visible: [j0, j1] */
                real m = si[j0];
                for (int j = j0 + 1; j <= j1; j++) m = si[j] > m ? si[j] : m;
                real sum = 0;
                for (int j = 0; j < n; j++) {
                    si[j] = j >= j0 && j <= j1 ? EXP(si[j] - m) : 0;
                    sum += si[j];
                }
                real inv = 1 / sum;
                for (int j = j0; j <= j1; j++) si[j] *= inv;
                lse[((size_t)b * S + i) * nh + h] = m + LOG(sum);
            }
            GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, i1 - i0, hd, n, 1, s, n,
                 v + (((size_t)b * S + lo) * nkv + g) * hd, nkv * hd, 0, out + (((size_t)b * S + i0) * nh + h) * hd,
                 nh * hd);
        }
        free(s);
    }
    blas_single_thread_end(saved);
}

/* Backward, the flash-attention recurrences, p rebuilt from the saved
 * logsumexp block by block:
 *
 *     D_i    = Σ_d dout_i · out_i
 *     p_ij   = exp(s_ij − lse_i)
 *     dp_ij  = dout_i · v_j
 *     ds_ij  = p_ij (dp_ij − D_i) · (1 − (s_ij/c)²)    (the factor only when soft-capped)
 *     dq_i  += scale Σ_j ds_ij k_j
 *     dk_j  += scale Σ_i ds_ij q_i
 *     dv_j  += Σ_i p_ij dout_i
 *
 * Per query block that is dP = dO·Vᵀ, dQ += scale·dS·K, dK += scale·dSᵀ·Q,
 * dV += Pᵀ·dO. dk_j and dv_j collect from every query block and from every
 * head of the group; to keep a fixed summation order without locks, one
 * thread takes a whole head (its blocks in order) and, when heads share a kv
 * head, writes that head's dk, dv into its own [S, hd] slice, which are then
 * added into dk, dv in head order. One sequence at a time, so the slices are
 * 2·nh·S·hd values. */
void FN(tn_attention_backward)(real *dq, real *dk, real *dv, const real *dout, const real *out, const real *lse,
                               const real *q, const real *k, const real *v, int B, int S, int nh, int nkv, int hd,
                               real scale, real softcap, int window) {
    if (B <= 0 || S <= 0 || nh <= 0 || hd <= 0 || (!dq && !dk && !dv)) return;
    assert(nkv > 0 && nh % nkv == 0);
    int group = nh / nkv, nblk = (S + QB - 1) / QB, need_ds = dq || dk;
    size_t slice = (size_t)S * hd;
    real *pk = group > 1 && dk ? scratch(nh * slice, sizeof(real)) : NULL;
    real *pv = group > 1 && dv ? scratch(nh * slice, sizeof(real)) : NULL;
    int threads = omp_get_max_threads(), saved = blas_single_thread_begin();
#pragma omp parallel num_threads(threads) if ((double)B * nh * S * S * hd >= ATTN_PAR_MIN)
    {
        real *p = scratch((size_t)QB * S, sizeof(real)), *dp = scratch((size_t)QB * S, sizeof(real));
        for (int b = 0; b < B; b++) {
#pragma omp for schedule(dynamic, 1)
            for (int h = 0; h < nh; h++) {
                int g = h / group;
                /* Where this head's dk, dv go: its own slice, or straight into dk, dv. */
                real *dkh = NULL, *dvh = NULL;
                int ld = nkv * hd;
                if (group > 1) {
                    ld = hd;
                    if (pk) memset(dkh = pk + h * slice, 0, slice * sizeof(real));
                    if (pv) memset(dvh = pv + h * slice, 0, slice * sizeof(real));
                } else {
                    dkh = dk ? dk + ((size_t)b * S * nkv + g) * hd : NULL;
                    dvh = dv ? dv + ((size_t)b * S * nkv + g) * hd : NULL;
                }
                for (int blk = 0; blk < nblk; blk++) {
                    int i0 = blk * QB, i1 = i0 + QB < S ? i0 + QB : S, rows = i1 - i0;
                    int lo = first_key(i0, window), n = i1 - lo;
                    size_t tq = ((size_t)b * S + i0) * nh + h, tk = ((size_t)b * S + lo) * nkv + g;
                    const real *dob = dout + tq * hd, *vb = v + tk * hd;
                    block_scores(p, q, k, b, S, nh, nkv, hd, h, g, i0, i1, lo, scale, softcap);
                    if (need_ds)
                        GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, rows, n, hd, 1, dob, nh * hd, vb, nkv * hd, 0,
                             dp, n);
                    for (int i = i0; i < i1; i++) {
                        real *pi = p + (size_t)(i - i0) * n, *dpi = dp + (size_t)(i - i0) * n;
                        int j0 = first_key(i, window) - lo, j1 = i - lo;
                        size_t r = ((size_t)b * S + i) * nh + h;
                        real L = lse[r], D = 0;
                        for (int d = 0; d < hd; d++) D += dout[r * hd + d] * out[r * hd + d];
                        for (int j = 0; j < n; j++) {
                            if (j < j0 || j > j1) {
                                pi[j] = 0;
                                if (need_ds) dpi[j] = 0;
                                continue;
                            }
                            real s = pi[j];
                            pi[j] = EXP(s - L);
                            if (need_ds) {
                                real ds = pi[j] * (dpi[j] - D);
                                if (softcap > 0) ds *= 1 - (s / softcap) * (s / softcap);
                                dpi[j] = ds; /* dp becomes ds */
                            }
                        }
                    }
                    if (dq)
                        GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hd, n, scale, dp, n, k + tk * hd,
                             nkv * hd, 1, dq + tq * hd, nh * hd);
                    size_t kofs = (size_t)lo * ld;
                    if (dkh)
                        GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, n, hd, rows, scale, dp, n, q + tq * hd, nh * hd,
                             1, dkh + kofs, ld);
                    if (dvh)
                        GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, n, hd, rows, 1, p, n, dob, nh * hd, 1,
                             dvh + kofs, ld);
                }
            }
            if (group > 1) {
                /* Sum the slices of each group into dk, dv, heads in order. */
#pragma omp for
                for (int j = 0; j < S; j++) {
                    for (int g = 0; g < nkv; g++) {
                        size_t at = (((size_t)b * S + j) * nkv + g) * hd;
                        for (int e = 0; e < group; e++) {
                            size_t from = (size_t)(g * group + e) * slice + (size_t)j * hd;
                            if (pk)
                                for (int d = 0; d < hd; d++) dk[at + d] += pk[from + d];
                            if (pv)
                                for (int d = 0; d < hd; d++) dv[at + d] += pv[from + d];
                        }
                    }
                }
            }
        }
        free(p);
        free(dp);
    }
    blas_single_thread_end(saved);
    free(pk);
    free(pv);
}
