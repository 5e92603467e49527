/* cross_entropy_impl.h - the language-model loss on a chunk of rows, its
 * gradient written over the logits it was computed from, so a [rows, V]
 * chunk is the only logits buffer there is. Included by ops_impl.h. */

/* For each row with label y ≠ TN_IGNORE_INDEX, logits l [V]:
 *
 *     m       = max_v l_v
 *     lse     = m + log Σ_v exp(l_v − m)
 *     loss    = lse − l_y                        (= −log softmax(l)_y)
 *     l_v    ← grad_scale · (exp(l_v − lse) − [v = y])
 *
 * Ignored rows become zero and add nothing. Returns Σ loss over counted rows
 * (the caller divides by the count it wants, e.g. tokens in the whole batch,
 * and passes grad_scale = 1/that count). Rows go to threads in blocks; the
 * per-row losses land in an array summed in row order, so the total does not
 * depend on the thread count. The exponential sum is in double: V reaches
 * 256k. */
double FN(tn_cross_entropy_forward_backward)(real *logits, const int32_t *labels, int rows, int V, real grad_scale,
                                             int *counted) {
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
            real m = l[0];
            for (int c = 1; c < V; c++) m = l[c] > m ? l[c] : m;
            real ly = l[y];
            double sum = 0;
            for (int c = 0; c < V; c++) {
                l[c] = EXP(l[c] - m);
                sum += l[c];
            }
            loss[r - r0] = (double)m + log(sum) - (double)ly;
            real mul = (real)(grad_scale / sum);
            for (int c = 0; c < V; c++) l[c] *= mul;
            l[y] -= grad_scale;
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
