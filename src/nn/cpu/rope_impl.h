/* rope_impl.h - rotary position embedding in Hugging Face's rotate-half
 * layout. The tables (cos, sin per position and frequency, with the Llama 3
 * or linear rescaling already applied) come from rope_table.c. Included by
 * ops_impl.h. */

/* Forward, in place on each head of x [T, n_heads·hd]. With h = hd/2 and
 * θ_i = pos[t] · inv_freq[i], the pair (x_i, x_{i+h}) is rotated by θ_i:
 *
 *     x_i     ← x_i · cos θ_i − x_{i+h} · sin θ_i
 *     x_{i+h} ← x_{i+h} · cos θ_i + x_i · sin θ_i
 *
 * which is transformers' x·cos + rotate_half(x)·sin with
 * rotate_half(x) = (−x_{h..hd}, x_{0..h}) and cos, sin repeated twice. */
void FN(tn_rope_forward)(real *x, const tn_rope_table *rt, const int32_t *pos, int T, int n_heads, int hd) {
    int h = hd / 2;
    assert(rt->half == h);
    const real *cos_tab = ROPE_COS(rt), *sin_tab = ROPE_SIN(rt);
#pragma omp parallel for if ((int64_t)T * n_heads * hd >= PAR_MIN)
    for (int t = 0; t < T; t++) {
        assert(pos[t] >= 0 && pos[t] < rt->max_pos);
        const real *cs = cos_tab + (size_t)pos[t] * h, *sn = sin_tab + (size_t)pos[t] * h;
        for (int head = 0; head < n_heads; head++) {
            real *xh = x + ((size_t)t * n_heads + head) * hd;
            for (int i = 0; i < h; i++) {
                real a = xh[i], b = xh[i + h];
                xh[i] = a * cs[i] - b * sn[i];
                xh[i + h] = b * cs[i] + a * sn[i];
            }
        }
    }
}

/* Backward. The rotation is orthogonal, so its transpose is the rotation by
 * −θ, applied in place to the gradient:
 *
 *     dx_i     ← dx_i · cos θ_i + dx_{i+h} · sin θ_i
 *     dx_{i+h} ← dx_{i+h} · cos θ_i − dx_i · sin θ_i
 *
 * (In place rather than accumulating: the caller's buffer holds dy on entry
 * and dx on exit.) */
void FN(tn_rope_backward)(real *dx, const tn_rope_table *rt, const int32_t *pos, int T, int n_heads, int hd) {
    int h = hd / 2;
    assert(rt->half == h);
    const real *cos_tab = ROPE_COS(rt), *sin_tab = ROPE_SIN(rt);
#pragma omp parallel for if ((int64_t)T * n_heads * hd >= PAR_MIN)
    for (int t = 0; t < T; t++) {
        assert(pos[t] >= 0 && pos[t] < rt->max_pos);
        const real *cs = cos_tab + (size_t)pos[t] * h, *sn = sin_tab + (size_t)pos[t] * h;
        for (int head = 0; head < n_heads; head++) {
            real *g = dx + ((size_t)t * n_heads + head) * hd;
            for (int i = 0; i < h; i++) {
                real a = g[i], b = g[i + h];
                g[i] = a * cs[i] + b * sn[i];
                g[i + h] = b * cs[i] - a * sn[i];
            }
        }
    }
}
