/* common.cuh - what every CUDA file of the backend shares: the context,
 * checked calls that return an error (never exit), bf16/fp32 loads and
 * stores, warp and block sums, and the dtype dispatch. */
#pragma once

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

extern "C" {
#include "nn/backend.h"
#include "util/error.h"
}

struct tn_cuda {
    int device;
    cudaStream_t stream;
    cublasLtHandle_t lt;
    void *workspace; /* cuBLASLt's, workspace_bytes */
    size_t workspace_bytes;
    char name[256];
};

/* A CUDA call that returns its error as ours: file, line, the call, CUDA's message. */
#define CUDA_TRY(call)                                                                                          \
    do {                                                                                                        \
        cudaError_t e_ = (call);                                                                                \
        if (e_ != cudaSuccess)                                                                                  \
            return tn_fail("%s:%d: %s: %s", __FILE__, __LINE__, #call, cudaGetErrorString(e_));               \
    } while (0)
#define CUBLAS_TRY(call)                                                                                        \
    do {                                                                                                        \
        cublasStatus_t s_ = (call);                                                                             \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                                        \
            return tn_fail("%s:%d: %s: cuBLAS status %d", __FILE__, __LINE__, #call, (int)s_);                \
    } while (0)
/* After every launch: a bad configuration shows here, a fault at the next sync. */
#define LAUNCH_CHECK() CUDA_TRY(cudaGetLastError())

typedef __nv_bfloat16 bf16;

__device__ __forceinline__ float ldf(const float *p, size_t i) { return p[i]; }
__device__ __forceinline__ float ldf(const bf16 *p, size_t i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ void stf(float *p, size_t i, float v) { p[i] = v; }
__device__ __forceinline__ void stf(bf16 *p, size_t i, float v) { p[i] = __float2bfloat16_rn(v); }

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
/* Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the total. */
__device__ __forceinline__ float block_sum(float v) {
    __shared__ float part[32];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    v = warp_sum(v);
    __syncthreads(); /* part[] may still be read by a previous call */
    if (lane == 0) part[warp] = v;
    __syncthreads();
    v = lane < nw ? part[lane] : 0.f;
    return warp_sum(v);
}
__device__ __forceinline__ float block_max(float v) {
    __shared__ float part[32];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) part[warp] = v;
    __syncthreads();
    v = lane < nw ? part[lane] : -INFINITY;
    return warp_max(v);
}

/* Eight consecutive elements as fp32, through one 16-byte access (bf16) or
 * two (fp32): the caller checks 16-byte alignment and the count (vec8_ok). */
__device__ __forceinline__ void ld8(const float *p, size_t i, float *v) {
    float4 a = *(const float4 *)(p + i), b = *(const float4 *)(p + i + 4);
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}
__device__ __forceinline__ void ld8(const bf16 *p, size_t i, float *v) {
    uint4 r = *(const uint4 *)(p + i);
    const __nv_bfloat162 *h = (const __nv_bfloat162 *)&r;
#pragma unroll
    for (int k = 0; k < 4; k++) {
        float2 f = __bfloat1622float2(h[k]);
        v[2 * k] = f.x, v[2 * k + 1] = f.y;
    }
}
__device__ __forceinline__ void st8(float *p, size_t i, const float *v) {
    *(float4 *)(p + i) = make_float4(v[0], v[1], v[2], v[3]);
    *(float4 *)(p + i + 4) = make_float4(v[4], v[5], v[6], v[7]);
}
__device__ __forceinline__ void st8(bf16 *p, size_t i, const float *v) {
    uint4 r;
    __nv_bfloat162 *h = (__nv_bfloat162 *)&r;
#pragma unroll
    for (int k = 0; k < 4; k++) h[k] = __floats2bfloat162_rn(v[2 * k], v[2 * k + 1]);
    *(uint4 *)(p + i) = r;
}
/* Whether n elements at these pointers (NULL ignored) can go eight at a time. */
static inline int vec8_ok(int64_t n, const void *a, const void *b = NULL, const void *c = NULL, const void *d = NULL) {
    const void *ps[4] = {a, b, c, d};
    if (n % 8) return 0;
    for (int i = 0; i < 4; i++)
        if (ps[i] && ((uintptr_t)ps[i] % 16)) return 0;
    return 1;
}

static inline unsigned blocks_for(int64_t n, int threads) { return (unsigned)((n + threads - 1) / threads); }

/* Runs the statements with T bound to the storage type of dt (float or bf16). */
#define DISPATCH_DT(dt, ...)                                                                                   \
    do {                                                                                                        \
        if ((dt) == TN_F32) {                                                                                   \
            typedef float T;                                                                                    \
            __VA_ARGS__;                                                                                        \
        } else if ((dt) == TN_BF16) {                                                                           \
            typedef bf16 T;                                                                                     \
            __VA_ARGS__;                                                                                        \
        } else                                                                                                  \
            return tn_fail("%s: unknown dtype %d", __func__, (int)(dt));                                      \
    } while (0)
