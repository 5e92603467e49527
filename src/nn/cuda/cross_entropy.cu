/* cross_entropy.cu - the loss on a chunk of rows with its gradient written
 * over the fp32 logits (nn/cpu/cross_entropy_impl.h is the reference); one
 * block per row, three passes over the row (max, sum, gradient). */
#include "nn/cuda/common.cuh"

#include "nn/ops.h" /* TN_IGNORE_INDEX */

/* s = z or c·tanh(z/c); lse = m + log Σ exp(s − m); loss = lse − s_y;
 * z ← grad_scale·(exp(s − lse) − [v = y])·(1 − (s/c)² when capped). */
__global__ void cross_entropy_kernel(float *logits, float *losses, const int32_t *labels, int V, float cap,
                                     float grad_scale) {
    float *l = logits + (size_t)blockIdx.x * V;
    int y = labels[blockIdx.x];
    if (y == TN_IGNORE_INDEX || y < 0 || y >= V) {
        for (int v = threadIdx.x; v < V; v += blockDim.x) l[v] = 0.f;
        if (threadIdx.x == 0) losses[blockIdx.x] = y == TN_IGNORE_INDEX ? 0.f : NAN; /* out of range: poisoned */
        return;
    }
    float m = -INFINITY;
    for (int v = threadIdx.x; v < V; v += blockDim.x) {
        float s = l[v];
        if (cap > 0) l[v] = s = cap * tanhf(s / cap);
        m = fmaxf(m, s);
    }
    m = block_max(m); /* its barrier makes the capped l[y] visible */
    float sy = l[y], sum = 0.f;
    for (int v = threadIdx.x; v < V; v += blockDim.x) sum += expf(l[v] - m);
    float lse = m + logf(block_sum(sum));
    if (threadIdx.x == 0) losses[blockIdx.x] = lse - sy;
    for (int v = threadIdx.x; v < V; v += blockDim.x) {
        float s = l[v], g = grad_scale * (expf(s - lse) - (v == y ? 1.f : 0.f));
        if (cap > 0) g *= 1.f - (s / cap) * (s / cap);
        l[v] = g;
    }
}

extern "C" int tn_cuda_cross_entropy_forward_backward(tn_cuda *c, float *logits, float *losses,
                                                      const int32_t *labels, int rows, int V, float softcap,
                                                      float grad_scale) {
    if (rows <= 0) return 0;
    cross_entropy_kernel<<<rows, 1024, 0, c->stream>>>(logits, losses, labels, V, softcap, grad_scale);
    LAUNCH_CHECK();
    return 0;
}
