/* elementwise.cu - the small pieces of a layer between the products: scaled
 * adds, the residual add with a multiplier, bias adds, the reductions the
 * optimizer needs (sum of squares for the gradient norm), and the
 * cross-entropy on bf16 logits. All compute in fp32. */
#include "nn/cuda/common.cuh"

#include "nn/ops.h" /* TN_IGNORE_INDEX */

/* y = α·x + β·y (β = 0: y is only written). */
template <typename T>
__global__ void axpby_kernel(T *y, const T *x, float a, float b, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float v = a * ldf(x, i);
        if (b != 0.f) v += b * ldf(y, i);
        stf(y, i, v);
    }
}

/* out = a + c·b */
template <typename T>
__global__ void residual_kernel(T *out, const T *a, const T *b, float c, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        stf(out, i, ldf(a, i) + c * ldf(b, i));
}

/* y[t, j] += bias[j] */
template <typename T>
__global__ void add_bias_kernel(T *y, const float *bias, int64_t n, int C) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        stf(y, i, ldf(y, i) + bias[i % C]);
}

/* The two above, eight elements a thread (vec8_ok). */
template <typename T>
__global__ void axpby_vec_kernel(T *y, const T *x, float a, float b, int64_t n8) {
    int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= n8) return;
    float xv[8], yv[8];
    ld8(x, (size_t)j * 8, xv);
    if (b != 0.f) ld8(y, (size_t)j * 8, yv);
#pragma unroll
    for (int k = 0; k < 8; k++) yv[k] = a * xv[k] + (b != 0.f ? b * yv[k] : 0.f);
    st8(y, (size_t)j * 8, yv);
}

template <typename T>
__global__ void residual_vec_kernel(T *out, const T *a, const T *b, float c, int64_t n8) {
    int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= n8) return;
    float av[8], bv[8];
    ld8(a, (size_t)j * 8, av);
    ld8(b, (size_t)j * 8, bv);
#pragma unroll
    for (int k = 0; k < 8; k++) av[k] += c * bv[k];
    st8(out, (size_t)j * 8, av);
}

static unsigned grid_for(int64_t n) {
    int64_t b = (n + 255) / 256;
    return (unsigned)(b < 132 * 16 ? (b > 0 ? b : 1) : 132 * 16);
}

extern "C" int tn_cuda_axpby(tn_cuda *c, void *y, const void *x, float alpha, float beta, tn_dev_dtype dt, int64_t n) {
    if (n <= 0) return 0;
    if (vec8_ok(n, y, x)) {
        DISPATCH_DT(dt, axpby_vec_kernel<T><<<blocks_for(n / 8, 256), 256, 0, c->stream>>>((T *)y, (const T *)x, alpha, beta, n / 8));
        LAUNCH_CHECK();
        return 0;
    }
    DISPATCH_DT(dt, axpby_kernel<T><<<grid_for(n), 256, 0, c->stream>>>((T *)y, (const T *)x, alpha, beta, n));
    LAUNCH_CHECK();
    return 0;
}

extern "C" int tn_cuda_residual_forward(tn_cuda *c, void *out, const void *a, const void *b, float m, tn_dev_dtype dt,
                                        int64_t n) {
    if (n <= 0) return 0;
    if (vec8_ok(n, out, a, b)) {
        DISPATCH_DT(dt, residual_vec_kernel<T><<<blocks_for(n / 8, 256), 256, 0, c->stream>>>((T *)out, (const T *)a, (const T *)b, m,
                                                                                            n / 8));
        LAUNCH_CHECK();
        return 0;
    }
    DISPATCH_DT(dt, residual_kernel<T><<<grid_for(n), 256, 0, c->stream>>>((T *)out, (const T *)a, (const T *)b, m, n));
    LAUNCH_CHECK();
    return 0;
}

extern "C" int tn_cuda_add_bias(tn_cuda *c, void *y, const float *bias, tn_dev_dtype dt, int T_, int C) {
    int64_t n = (int64_t)T_ * C;
    if (n <= 0) return 0;
    DISPATCH_DT(dt, add_bias_kernel<T><<<grid_for(n), 256, 0, c->stream>>>((T *)y, bias, n, C));
    LAUNCH_CHECK();
    return 0;
}

/* part[block] = Σ over the block's grid-stride share of x² (or x). */
__global__ void sum_kernel(const float *x, int64_t n, int squares, double *part) {
    double acc = 0;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        double v = x[i];
        acc += squares ? v * v : v;
    }
    __shared__ double sh[256];
    sh[threadIdx.x] = acc;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) part[blockIdx.x] = sh[0];
}

static int reduce(tn_cuda *c, const float *x, int64_t n, int squares, double *out) {
    enum { BLOCKS = 264 };
    static double *part = NULL; /* one small device buffer for the process */
    double host[BLOCKS];
    if (!part) CUDA_TRY(cudaMalloc((void **)&part, BLOCKS * sizeof(double)));
    sum_kernel<<<BLOCKS, 256, 0, c->stream>>>(x, n, squares, part);
    LAUNCH_CHECK();
    CUDA_TRY(cudaMemcpyAsync(host, part, sizeof host, cudaMemcpyDeviceToHost, c->stream));
    CUDA_TRY(cudaStreamSynchronize(c->stream));
    double s = 0;
    for (int i = 0; i < BLOCKS; i++) s += host[i];
    *out = s;
    return 0;
}

extern "C" int tn_cuda_sumsq(tn_cuda *c, const float *x, int64_t n, double *out) { return reduce(c, x, n, 1, out); }
extern "C" int tn_cuda_sum(tn_cuda *c, const float *x, int64_t n, double *out) { return reduce(c, x, n, 0, out); }

__global__ void scale_kernel(float *x, float s, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) x[i] *= s;
}

extern "C" int tn_cuda_scale_f32(tn_cuda *c, float *x, float s, int64_t n) {
    if (n <= 0) return 0;
    scale_kernel<<<grid_for(n), 256, 0, c->stream>>>(x, s, n);
    LAUNCH_CHECK();
    return 0;
}

/* As cross_entropy.cu's kernel, on bf16 logits: s = z or c·tanh(z/c);
 * lse = m + log Σ exp(s − m); loss = lse − s_y; z ← grad_scale·(softmax(s) −
 * onehot)·(1 − (s/c)² when capped), rounded to bf16. The capped values are
 * recomputed in each pass instead of stored (bf16 storage would round them). */
__global__ void cross_entropy_bf16_kernel(bf16 *logits, float *losses, const int32_t *labels, int V, float cap,
                                          float grad_scale) {
    bf16 *l = logits + (size_t)blockIdx.x * V;
    int y = labels[blockIdx.x];
    if (y == TN_IGNORE_INDEX || y < 0 || y >= V) {
        for (int v = threadIdx.x; v < V; v += blockDim.x) l[v] = __float2bfloat16_rn(0.f);
        if (threadIdx.x == 0) losses[blockIdx.x] = y == TN_IGNORE_INDEX ? 0.f : NAN;
        return;
    }
    float m = -INFINITY;
    for (int v = threadIdx.x; v < V; v += blockDim.x) {
        float s = __bfloat162float(l[v]);
        if (cap > 0) s = cap * tanhf(s / cap);
        m = fmaxf(m, s);
    }
    m = block_max(m);
    float sy = __bfloat162float(l[y]);
    if (cap > 0) sy = cap * tanhf(sy / cap);
    float sum = 0.f;
    for (int v = threadIdx.x; v < V; v += blockDim.x) {
        float s = __bfloat162float(l[v]);
        if (cap > 0) s = cap * tanhf(s / cap);
        sum += expf(s - m);
    }
    float lse = m + logf(block_sum(sum));
    if (threadIdx.x == 0) losses[blockIdx.x] = lse - sy;
    for (int v = threadIdx.x; v < V; v += blockDim.x) {
        float s = __bfloat162float(l[v]);
        if (cap > 0) s = cap * tanhf(s / cap);
        float g = grad_scale * (expf(s - lse) - (v == y ? 1.f : 0.f));
        if (cap > 0) g *= 1.f - (s / cap) * (s / cap);
        l[v] = __float2bfloat16_rn(g);
    }
}

extern "C" int tn_cuda_cross_entropy_bf16(tn_cuda *c, void *logits, float *losses, const int32_t *labels, int rows, int V,
                                          float softcap, float grad_scale) {
    if (rows <= 0) return 0;
    cross_entropy_bf16_kernel<<<rows, 1024, 0, c->stream>>>((bf16 *)logits, losses, labels, V, softcap, grad_scale);
    LAUNCH_CHECK();
    return 0;
}
