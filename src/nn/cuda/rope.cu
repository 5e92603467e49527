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

/* The same, eight consecutive pairs a thread (hd/2 a multiple of 8, 16-byte aligned rows). */
template <typename T>
__global__ void rope_vec_kernel(T *x, const float *cos_t, const float *sin_t, const int32_t *pos, int Tn, int nh, int hd,
                                float sign) {
    int h = hd / 2, h8 = h / 8;
    int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (int64_t)Tn * nh * h8) return;
    int i = (int)(idx % h8) * 8;
    int64_t th = idx / h8;
    int t = (int)(th / nh);
    size_t base = (size_t)th * hd;
    float cs[8], sn[8], a[8], b[8], ya[8], yb[8];
    ld8(cos_t, (size_t)pos[t] * h + i, cs);
    ld8(sin_t, (size_t)pos[t] * h + i, sn);
    ld8(x, base + i, a);
    ld8(x, base + i + h, b);
#pragma unroll
    for (int k = 0; k < 8; k++) {
        float s = sign * sn[k];
        ya[k] = a[k] * cs[k] - b[k] * s;
        yb[k] = b[k] * cs[k] + a[k] * s;
    }
    st8(x, base + i, ya);
    st8(x, base + i + h, yb);
}

static int rope(tn_cuda *c, void *x, tn_dev_dtype dt, const float *cos_t, const float *sin_t, const int32_t *pos, int Tn,
                int nh, int hd, float sign) {
    int64_t n = (int64_t)Tn * nh * (hd / 2);
    if (n <= 0) return 0;
    if ((hd / 2) % 8 == 0 && vec8_ok(8, x, cos_t, sin_t)) {
        DISPATCH_DT(dt, rope_vec_kernel<T><<<blocks_for(n / 8, 256), 256, 0, c->stream>>>((T *)x, cos_t, sin_t, pos, Tn, nh, hd, sign));
        LAUNCH_CHECK();
        return 0;
    }
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
