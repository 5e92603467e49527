/* activations.cu - the gated MLP activations (SwiGLU, GeGLU with tanh GELU)
 * and the soft-cap, elementwise (nn/cpu/activations_impl.h is the reference). */
#include "nn/cuda/common.cuh"

#define GELU_K 0.7978845608028654f /* √(2/π) */
#define GELU_C 0.044715f

__device__ __forceinline__ float sigmoidf_(float x) { return 1.f / (1.f + expf(-x)); }
/* ½(1 + tanh a) = σ(2a), a = √(2/π)(g + 0.044715 g³) */
__device__ __forceinline__ float gelu_sigma(float g) { return sigmoidf_(2.f * GELU_K * (g + GELU_C * g * g * g)); }

/* h = act(g)·u: swiglu act = g·σ(g), geglu act = g·σ(2a). */
template <typename T, int GELU>
__global__ void glu_forward_kernel(T *h, const T *g, const T *u, int64_t n) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float x = ldf(g, i);
    float s = GELU ? gelu_sigma(x) : sigmoidf_(x);
    stf(h, i, x * s * ldf(u, i));
}

/* The same, eight elements a thread (vec8_ok). */
template <typename T, int GELU>
__global__ void glu_forward_vec_kernel(T *h, const T *g, const T *u, int64_t n8) {
    int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= n8) return;
    float x[8], y[8], o[8];
    ld8(g, (size_t)j * 8, x);
    ld8(u, (size_t)j * 8, y);
#pragma unroll
    for (int k = 0; k < 8; k++) o[k] = x[k] * (GELU ? gelu_sigma(x[k]) : sigmoidf_(x[k])) * y[k];
    st8(h, (size_t)j * 8, o);
}

/* dg = dh·u·act'(g), du = dh·act(g) written, eight elements a thread; du may be dh. */
template <typename T, int GELU>
__global__ void glu_backward_write_vec_kernel(T *dg, T *du, const T *dh, const T *g, const T *u, int64_t n8) {
    int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= n8) return;
    float x[8], d[8], y[8], a[8], b[8];
    ld8(g, (size_t)j * 8, x);
    ld8(dh, (size_t)j * 8, d);
    ld8(u, (size_t)j * 8, y);
#pragma unroll
    for (int k = 0; k < 8; k++) {
        float s = GELU ? gelu_sigma(x[k]) : sigmoidf_(x[k]);
        float dact = GELU ? s + 2.f * x[k] * s * (1.f - s) * GELU_K * (1.f + 3.f * GELU_C * x[k] * x[k]) : s * (1.f + x[k] * (1.f - s));
        a[k] = d[k] * y[k] * dact;
        b[k] = d[k] * x[k] * s;
    }
    st8(dg, (size_t)j * 8, a);
    st8(du, (size_t)j * 8, b);
}

/* dg += dh·u·act'(g), du += dh·act(g); silu' = σ(1 + g(1 − σ)), gelu' = σ + 2gσ(1 − σ)·√(2/π)(1 + 3·0.044715g²). */
template <typename T, int GELU, int ACC = 1>
__global__ void glu_backward_kernel(T *dg, T *du, const T *dh, const T *g, const T *u, int64_t n) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float x = ldf(g, i), d = ldf(dh, i);
    float s = GELU ? gelu_sigma(x) : sigmoidf_(x);
    if (dg) {
        float dact = GELU ? s + 2.f * x * s * (1.f - s) * GELU_K * (1.f + 3.f * GELU_C * x * x)
                          : s * (1.f + x * (1.f - s));
        stf(dg, i, (ACC ? ldf(dg, i) : 0.f) + d * ldf(u, i) * dact);
    }
    if (du) stf(du, i, (ACC ? ldf(du, i) : 0.f) + d * x * s); /* du may be dh itself (read above) */
}

/* y = c·tanh(x/c) */
template <typename T>
__global__ void softcap_forward_kernel(T *y, const T *x, float c, int64_t n) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) stf(y, i, c * tanhf(ldf(x, i) / c));
}

/* dx += dy·(1 − (y/c)²) */
template <typename T>
__global__ void softcap_backward_kernel(T *dx, const T *dy, const T *y, float c, int64_t n) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float r = ldf(y, i) / c;
    stf(dx, i, ldf(dx, i) + ldf(dy, i) * (1.f - r * r));
}

template <int GELU>
static int glu_forward(tn_cuda *c, void *h, const void *g, const void *u, tn_dev_dtype dt, int64_t n) {
    if (n <= 0) return 0;
    if (vec8_ok(n, h, g, u)) {
        DISPATCH_DT(dt, glu_forward_vec_kernel<T, GELU><<<blocks_for(n / 8, 256), 256, 0, c->stream>>>((T *)h, (const T *)g,
                                                                                                    (const T *)u, n / 8));
        LAUNCH_CHECK();
        return 0;
    }
    DISPATCH_DT(dt, glu_forward_kernel<T, GELU><<<blocks_for(n, 256), 256, 0, c->stream>>>((T *)h, (const T *)g,
                                                                                            (const T *)u, n));
    LAUNCH_CHECK();
    return 0;
}

template <int GELU>
static int glu_backward(tn_cuda *c, void *dg, void *du, const void *dh, const void *g, const void *u, tn_dev_dtype dt,
                        int64_t n) {
    if (n <= 0 || (!dg && !du)) return 0;
    DISPATCH_DT(dt, glu_backward_kernel<T, GELU><<<blocks_for(n, 256), 256, 0, c->stream>>>(
                        (T *)dg, (T *)du, (const T *)dh, (const T *)g, (const T *)u, n));
    LAUNCH_CHECK();
    return 0;
}

extern "C" int tn_cuda_swiglu_forward(tn_cuda *c, void *h, const void *g, const void *u, tn_dev_dtype dt, int64_t n) {
    return glu_forward<0>(c, h, g, u, dt, n);
}
extern "C" int tn_cuda_swiglu_backward(tn_cuda *c, void *dg, void *du, const void *dh, const void *g, const void *u,
                                       tn_dev_dtype dt, int64_t n) {
    return glu_backward<0>(c, dg, du, dh, g, u, dt, n);
}
extern "C" int tn_cuda_geglu_forward(tn_cuda *c, void *h, const void *g, const void *u, tn_dev_dtype dt, int64_t n) {
    return glu_forward<1>(c, h, g, u, dt, n);
}
extern "C" int tn_cuda_geglu_backward(tn_cuda *c, void *dg, void *du, const void *dh, const void *g, const void *u,
                                      tn_dev_dtype dt, int64_t n) {
    return glu_backward<1>(c, dg, du, dh, g, u, dt, n);
}

/* As the backward above, writing dg and du instead of adding (du may alias dh). */
extern "C" int tn_cuda_glu_backward_write(tn_cuda *c, int gelu, void *dg, void *du, const void *dh, const void *g,
                                          const void *u, tn_dev_dtype dt, int64_t n) {
    if (n <= 0) return 0;
    if (vec8_ok(n, dg, du, dh, g) && vec8_ok(n, u)) {
        if (gelu)
            DISPATCH_DT(dt, glu_backward_write_vec_kernel<T, 1><<<blocks_for(n / 8, 256), 256, 0, c->stream>>>(
                                (T *)dg, (T *)du, (const T *)dh, (const T *)g, (const T *)u, n / 8));
        else
            DISPATCH_DT(dt, glu_backward_write_vec_kernel<T, 0><<<blocks_for(n / 8, 256), 256, 0, c->stream>>>(
                                (T *)dg, (T *)du, (const T *)dh, (const T *)g, (const T *)u, n / 8));
        LAUNCH_CHECK();
        return 0;
    }
    if (gelu)
        DISPATCH_DT(dt, glu_backward_kernel<T, 1, 0><<<blocks_for(n, 256), 256, 0, c->stream>>>(
                            (T *)dg, (T *)du, (const T *)dh, (const T *)g, (const T *)u, n));
    else
        DISPATCH_DT(dt, glu_backward_kernel<T, 0, 0><<<blocks_for(n, 256), 256, 0, c->stream>>>(
                            (T *)dg, (T *)du, (const T *)dh, (const T *)g, (const T *)u, n));
    LAUNCH_CHECK();
    return 0;
}

extern "C" int tn_cuda_softcap_forward(tn_cuda *c, void *y, const void *x, tn_dev_dtype dt, float cap, int64_t n) {
    if (n <= 0) return 0;
    DISPATCH_DT(dt, softcap_forward_kernel<T><<<blocks_for(n, 256), 256, 0, c->stream>>>((T *)y, (const T *)x, cap,
                                                                                          n));
    LAUNCH_CHECK();
    return 0;
}
extern "C" int tn_cuda_softcap_backward(tn_cuda *c, void *dx, const void *dy, const void *y, tn_dev_dtype dt, float cap,
                                        int64_t n) {
    if (n <= 0) return 0;
    DISPATCH_DT(dt, softcap_backward_kernel<T><<<blocks_for(n, 256), 256, 0, c->stream>>>(
                        (T *)dx, (const T *)dy, (const T *)y, cap, n));
    LAUNCH_CHECK();
    return 0;
}
