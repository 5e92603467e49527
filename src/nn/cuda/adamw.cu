/* adamw.cu - the AdamW update over all (LoRA) parameters in one kernel, as
 * train/optim.c's tn_adamw_update (torch.optim.AdamW): fp32 master weights,
 * gradients and moments. */
#include <math.h>

#include "nn/cuda/common.cuh"

/* p ← p·decay; m ← β1 m + (1−β1) g; v ← β2 v + (1−β2) g²; p ← p − step·m / (sqrt(v)/bc2s + ε),
 * decay = 1 − lr·wd, step = lr/(1−β1ᵗ), bc2s = sqrt(1−β2ᵗ) (the corrections in double on the host, as torch). */
__global__ void adamw_kernel(float *p, const float *g, float *m, float *v, int64_t n, float step_size, float decay,
                             float b1, float b2, float eps, float bc2s) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float gi = g[i], pi = p[i] * decay;
    float mi = m[i] * b1 + (1.f - b1) * gi;
    float vi = v[i] * b2 + (1.f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi - step_size * (mi / (sqrtf(vi) / bc2s + eps));
}

extern "C" int tn_cuda_adamw_update(tn_cuda *c, float *p, const float *g, float *m, float *v, int64_t n, double lr,
                                    double beta1, double beta2, double eps, double weight_decay, int64_t step) {
    if (n <= 0) return 0;
    if (step < 1) return tn_fail("adamw: update number %lld, expected 1 or more", (long long)step);
    double bc1 = 1.0 - pow(beta1, (double)step), bc2s = sqrt(1.0 - pow(beta2, (double)step));
    adamw_kernel<<<blocks_for(n, 256), 256, 0, c->stream>>>(p, g, m, v, n, (float)(lr / bc1),
                                                             (float)(1.0 - lr * weight_decay), (float)beta1,
                                                             (float)beta2, (float)eps, (float)bc2s);
    LAUNCH_CHECK();
    return 0;
}
