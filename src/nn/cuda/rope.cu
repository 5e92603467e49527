/* rope.cu - rotary embedding in the rotate-half layout, in place (nn/cpu/
 * rope_impl.h is the reference); one thread per rotated pair. */
#include "nn/cuda/common.cuh"

/* (x_i, x_{i+h}) <- (x_i cos − x_{i+h} sin, x_{i+h} cos + x_i sin), θ of pos[t]; sign = −1 rotates by −θ. */
template <typename T>
__global__ void rope_kernel(T *x, const float *cos_t, const float *sin_t, const int32_t *pos, int Tn, int nh, int hd,
                            float sign) {
    int h = hd / 2;
    int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (int64_t)Tn * nh * h) return;
    int i = (int)(idx % h);
    int64_t th = idx / h; /* t·nh + head */
    int t = (int)(th / nh);
    size_t base = (size_t)th * hd;
    size_t tab = (size_t)pos[t] * h + i;
    float cs = cos_t[tab], sn = sign * sin_t[tab];
    float a = ldf(x, base + i), b = ldf(x, base + i + h);
    stf(x, base + i, a * cs - b * sn);
    stf(x, base + i + h, b * cs + a * sn);
}

static int rope(tn_cuda *c, void *x, tn_dev_dtype dt, const float *cos_t, const float *sin_t, const int32_t *pos, int Tn,
                int nh, int hd, float sign) {
    int64_t n = (int64_t)Tn * nh * (hd / 2);
    if (n <= 0) return 0;
    DISPATCH_DT(dt, rope_kernel<T><<<blocks_for(n, 256), 256, 0, c->stream>>>((T *)x, cos_t, sin_t, pos, Tn, nh, hd,
                                                                               sign));
    LAUNCH_CHECK();
    return 0;
}

extern "C" int tn_cuda_rope_forward(tn_cuda *c, void *x, tn_dev_dtype dt, const float *cos_t, const float *sin_t,
                                    const int32_t *pos, int Tn, int nh, int hd) {
    return rope(c, x, dt, cos_t, sin_t, pos, Tn, nh, hd, 1.f);
}

extern "C" int tn_cuda_rope_backward(tn_cuda *c, void *dx, tn_dev_dtype dt, const float *cos_t, const float *sin_t,
                                     const int32_t *pos, int Tn, int nh, int hd) {
    return rope(c, dx, dt, cos_t, sin_t, pos, Tn, nh, hd, -1.f);
}
