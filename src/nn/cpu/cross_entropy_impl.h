/* cross_entropy_impl.h - the language-model loss on a chunk of rows, its
 * gradient written over the logits it was computed from, so a [rows, V]
 * chunk is the only logits buffer there is. Included by ops_impl.h. */

/* One row, label y, logits l [V], optionally soft-capped (c > 0):
 *
 *     s_v     = l_v, or c · tanh(l_v / c)
 *     m       = max_v s_v
 *     lse     = m + log Σ_v exp(s_v − m)
 *     loss    = lse − s_y                        (= −log softmax(s)_y)
 *     l_v    ← grad_scale · (exp(s_v − lse) − [v = y])       · (1 − (s_v/c)²) when capped
 *
 * Without the cap the exponentials are stored on the first pass and scaled
 * on the second (one exp per logit); with it, s is kept in the buffer and
 * the exponentials are taken twice, since the cap's derivative needs s. The
 * exponential sum is in double: V reaches 256k. Returns the row's loss. */
static double cross_entropy_row(real *l, int y, int V, real softcap, real grad_scale) {
    if (softcap > 0)
        for (int c = 0; c < V; c++) l[c] = softcap * TANH(l[c] / softcap);
    real m = l[0];
    for (int c = 1; c < V; c++) m = l[c] > m ? l[c] : m;
    real sy = l[y];
    double sum = 0;
    if (softcap > 0) {
        for (int c = 0; c < V; c++) sum += EXP(l[c] - m);
        real lse = (real)((double)m + log(sum));
        for (int c = 0; c < V; c++) {
            real s = l[c], r = s / softcap;
            l[c] = grad_scale * (EXP(s - lse) - (c == y)) * (1 - r * r);
        }
    } else {
        for (int c = 0; c < V; c++) {
            l[c] = EXP(l[c] - m);
            sum += l[c];
        }
        real mul = (real)(grad_scale / sum);
        for (int c = 0; c < V; c++) l[c] *= mul;
        l[y] -= grad_scale;
    }
    return (double)m + log(sum) - (double)sy;
}

/* Rows go to threads in blocks; the per-row losses land in an array summed
 * in row order, so the total does not depend on the thread count. Ignored
 * rows become zero and add nothing. Returns Σ loss over counted rows (the
 * caller divides by the count it wants, e.g. tokens in the whole batch, and
 * passes grad_scale = 1/that count). */
static double cross_entropy_chunk(real *logits, const int32_t *labels, int rows, int V, real softcap,
                                  real grad_scale, int *counted) {
    enum { BLOCK = 64 };
    double total = 0;
    int count = 0;
    for (int r0 = 0; r0 < rows; r0 += BLOCK) {
        int r1 = r0 + BLOCK < rows ? r0 + BLOCK : rows;
        double loss[BLOCK];
#pragma omp parallel for schedule(dynamic, 1) if ((int64_t)(r1 - r0) * V >= PAR_MIN)
        for (int r = r0; r < r1; r++) {
            real *l = logits + (size_t)r * V;
            int y = labels[r];
            if (y == TN_IGNORE_INDEX) {
                memset(l, 0, (size_t)V * sizeof(real));
                loss[r - r0] = 0;
                continue;
            }
            assert(y >= 0 && y < V);
            loss[r - r0] = cross_entropy_row(l, y, V, softcap, grad_scale);
        }
        for (int r = r0; r < r1; r++) {
            if (labels[r] == TN_IGNORE_INDEX) continue;
            total += loss[r - r0];
            count++;
        }
    }
    if (counted) *counted = count;
    return total;
}

double FN(tn_cross_entropy_forward_backward)(real *logits, const int32_t *labels, int rows, int V, real grad_scale,
                                             int *counted) {
    return cross_entropy_chunk(logits, labels, rows, V, 0, grad_scale, counted);
}

double FN(tn_cross_entropy_softcap_forward_backward)(real *logits, const int32_t *labels, int rows, int V,
                                                     real softcap, real grad_scale, int *counted) {
    return cross_entropy_chunk(logits, labels, rows, V, softcap, grad_scale, counted);
}
