/* rmsnorm.cu - RMSNorm forward and backward (nn/cpu/rmsnorm_impl.h is the
 * reference): one block of 256 threads per row, sums in fp32. */
#include "nn/cuda/common.cuh"

/* y = (x·rstd)·g, rstd = 1/sqrt(mean_c x² + eps), g = w or 1 + w; rstd saved. */
template <typename T>
__global__ void rmsnorm_forward_kernel(T *y, float *rstd, const T *x, const T *w, int C, float eps, int one_plus) {
    size_t row = (size_t)blockIdx.x * C;
    float ss = 0;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float v = ldf(x, row + c);
        ss += v * v;
    }
    float r = rsqrtf(block_sum(ss) / C + eps);
    if (threadIdx.x == 0) rstd[blockIdx.x] = r;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float g = ldf(w, c) + (one_plus ? 1.f : 0.f);
        stf(y, row + c, (ldf(x, row + c) * r) * g);
    }
}

/* dx += rstd·(dy⊙g − x̂·m), m = (1/C)Σ_c dy_c g_c x̂_c, x̂ = x·rstd; one block per row. */
template <typename T>
__global__ void rmsnorm_backward_dx_kernel(T *dx, const T *dy, const T *x, const T *w, const float *rstd, int C,
                                           int one_plus) {
    size_t row = (size_t)blockIdx.x * C;
    float r = rstd[blockIdx.x], m = 0;
    for (int c = threadIdx.x; c < C; c += blockDim.x)
        m += ldf(dy, row + c) * (ldf(w, c) + (one_plus ? 1.f : 0.f)) * (ldf(x, row + c) * r);
    m = block_sum(m) / C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float g = ldf(w, c) + (one_plus ? 1.f : 0.f);
        float d = r * (ldf(dy, row + c) * g - (ldf(x, row + c) * r) * m);
        stf(dx, row + c, ldf(dx, row + c) + d);
    }
}

/* The forward and the dx backward with eight elements a thread per access
 * (C a multiple of 8, 16-byte aligned rows); same math. */
template <typename T>
__global__ void rmsnorm_forward_vec_kernel(T *y, float *rstd, const T *x, const T *w, int C, float eps, int one_plus) {
    size_t row = (size_t)blockIdx.x * C;
    float ss = 0, v[8], g[8];
    for (int c = threadIdx.x * 8; c < C; c += blockDim.x * 8) {
        ld8(x, row + c, v);
#pragma unroll
        for (int k = 0; k < 8; k++) ss += v[k] * v[k];
    }
    float r = rsqrtf(block_sum(ss) / C + eps);
    if (threadIdx.x == 0) rstd[blockIdx.x] = r;
    for (int c = threadIdx.x * 8; c < C; c += blockDim.x * 8) {
        ld8(x, row + c, v);
        ld8(w, c, g);
#pragma unroll
        for (int k = 0; k < 8; k++) v[k] = (v[k] * r) * (g[k] + (one_plus ? 1.f : 0.f));
        st8(y, row + c, v);
    }
}

template <typename T>
__global__ void rmsnorm_backward_dx_vec_kernel(T *dx, const T *dy, const T *x, const T *w, const float *rstd, int C,
                                               int one_plus) {
    size_t row = (size_t)blockIdx.x * C;
    float r = rstd[blockIdx.x], m = 0, d[8], v[8], g[8], o[8];
    for (int c = threadIdx.x * 8; c < C; c += blockDim.x * 8) {
        ld8(dy, row + c, d);
        ld8(x, row + c, v);
        ld8(w, c, g);
#pragma unroll
        for (int k = 0; k < 8; k++) m += d[k] * (g[k] + (one_plus ? 1.f : 0.f)) * (v[k] * r);
    }
    m = block_sum(m) / C;
    for (int c = threadIdx.x * 8; c < C; c += blockDim.x * 8) {
        ld8(dy, row + c, d);
        ld8(x, row + c, v);
        ld8(w, c, g);
        ld8(dx, row + c, o);
#pragma unroll
        for (int k = 0; k < 8; k++) o[k] += r * (d[k] * (g[k] + (one_plus ? 1.f : 0.f)) - (v[k] * r) * m);
        st8(dx, row + c, o);
    }
}

enum { DW_ROWS = 64 };
/* dw_c += Σ_t dy_tc·x̂_tc: each thread one column over DW_ROWS rows, added with one atomic. */
template <typename T>
__global__ void rmsnorm_backward_dw_kernel(float *dw, const T *dy, const T *x, const float *rstd, int Tn, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    int t0 = blockIdx.y * DW_ROWS, t1 = min(t0 + DW_ROWS, Tn);
    float s = 0;
    for (int t = t0; t < t1; t++) s += ldf(dy, (size_t)t * C + c) * (ldf(x, (size_t)t * C + c) * rstd[t]);
    atomicAdd(dw + c, s);
}

extern "C" int tn_cuda_rmsnorm_forward(tn_cuda *c, void *y, float *rstd, const void *x, const void *w, tn_dev_dtype dt,
                                       int Tn, int C, float eps, int one_plus) {
    if (Tn <= 0) return 0;
    if (vec8_ok(C, y, x, w)) {
        DISPATCH_DT(dt, rmsnorm_forward_vec_kernel<T><<<Tn, 128, 0, c->stream>>>((T *)y, rstd, (const T *)x, (const T *)w, C, eps,
                                                                                 one_plus));
        LAUNCH_CHECK();
        return 0;
    }
    DISPATCH_DT(dt, rmsnorm_forward_kernel<T><<<Tn, 256, 0, c->stream>>>((T *)y, rstd, (const T *)x,
                                                                          (const T *)w, C, eps, one_plus));
    LAUNCH_CHECK();
    return 0;
}

extern "C" int tn_cuda_rmsnorm_backward(tn_cuda *c, void *dx, float *dw, const void *dy, const void *x,
                                        const void *w, const float *rstd, tn_dev_dtype dt, int Tn, int C, int one_plus) {
    if (Tn <= 0) return 0;
    if (dx && vec8_ok(C, dx, dy, x, w)) {
        DISPATCH_DT(dt, rmsnorm_backward_dx_vec_kernel<T><<<Tn, 128, 0, c->stream>>>(
                            (T *)dx, (const T *)dy, (const T *)x, (const T *)w, rstd, C, one_plus));
        LAUNCH_CHECK();
    } else if (dx) {
        DISPATCH_DT(dt, rmsnorm_backward_dx_kernel<T><<<Tn, 256, 0, c->stream>>>(
                            (T *)dx, (const T *)dy, (const T *)x, (const T *)w, rstd, C, one_plus));
        LAUNCH_CHECK();
    }
    if (dw) {
        dim3 grid(blocks_for(C, 256), blocks_for(Tn, DW_ROWS));
        DISPATCH_DT(dt, rmsnorm_backward_dw_kernel<T><<<grid, 256, 0, c->stream>>>(dw, (const T *)dy, (const T *)x,
                                                                                   rstd, Tn, C));
        LAUNCH_CHECK();
    }
    return 0;
}
