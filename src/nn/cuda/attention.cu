/* attention.cu - causal GQA attention with sliding window and soft-cap, fp32
 * (nn/cpu/attention_impl.h is the reference).
 *
 * A first, simple version: one warp per (token, query head). Each lane holds
 * hd/32 of the head's channels (lane + 32·e: coalesced), the keys are visited
 * one at a time with the online softmax, so no [S, S] scores exist anywhere;
 * only lse [T·nh] is saved. Backward rebuilds p_ij = exp(s_ij − lse_i) per key
 * and adds into dk, dv with atomics. Correct, memory-lean, but on the CUDA
 * cores and re-reading K and V once per query: the tiled tensor-core
 * (flash-attention) kernels replace it (docs/cuda.md). */
#include "nn/cuda/common.cuh"

__device__ __forceinline__ int first_key(int i, int window) { return window > 0 && i - window + 1 > 0 ? i - window + 1 : 0; }

/* s_ij = scale·q_i·k_j, then c·tanh(s/c) when c > 0; j in [first_key(i), i];
 * m, l, acc: the running max, Σ exp(s − m), Σ exp(s − m)·v_j;
 * out_i = acc / l, lse_i = m + log l. */
template <int NV>
__global__ void attention_forward_kernel(float *out, float *lse, const float *q, const float *k, const float *v, int B,
                                         int S, int nh, int nkv, int hd, float scale, float cap, int window) {
    int64_t warp = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x % 32;
    if (warp >= (int64_t)B * S * nh) return;
    int h = (int)(warp % nh);
    int64_t t = warp / nh; /* b·S + i */
    int i = (int)(t % S), g = h / (nh / nkv);
    int64_t seq0 = t - i;
    const float *qi = q + (t * nh + h) * hd;
    float qr[NV], acc[NV];
#pragma unroll
    for (int e = 0; e < NV; e++) qr[e] = qi[lane + 32 * e], acc[e] = 0.f;
    float m = -INFINITY, l = 0.f;
    for (int j = first_key(i, window); j <= i; j++) {
        const float *kj = k + ((seq0 + j) * nkv + g) * hd, *vj = v + ((seq0 + j) * nkv + g) * hd;
        float d = 0.f;
#pragma unroll
        for (int e = 0; e < NV; e++) d += qr[e] * kj[lane + 32 * e];
        float s = warp_sum(d) * scale;
        if (cap > 0) s = cap * tanhf(s / cap);
        float mn = fmaxf(m, s), corr = expf(m - mn), p = expf(s - mn);
        l = l * corr + p;
#pragma unroll
        for (int e = 0; e < NV; e++) acc[e] = acc[e] * corr + p * vj[lane + 32 * e];
        m = mn;
    }
    float *oi = out + (t * nh + h) * hd;
#pragma unroll
    for (int e = 0; e < NV; e++) oi[lane + 32 * e] = acc[e] / l;
    if (lane == 0) lse[t * nh + h] = m + logf(l);
}

/* With p_ij = exp(s_ij − lse_i), D_i = dout_i·out_i, dp_ij = dout_i·v_j:
 *     ds_ij = p_ij (dp_ij − D_i) · (1 − (s_ij/c)²  when capped)
 *     dq_i += scale Σ_j ds_ij k_j;  dk_j += scale ds_ij q_i;  dv_j += p_ij dout_i  (atomics) */
template <int NV>
__global__ void attention_backward_kernel(float *dq, float *dk, float *dv, const float *dout, const float *out,
                                          const float *lse, const float *q, const float *k, const float *v, int B,
                                          int S, int nh, int nkv, int hd, float scale, float cap, int window) {
    int64_t warp = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x % 32;
    if (warp >= (int64_t)B * S * nh) return;
    int h = (int)(warp % nh);
    int64_t t = warp / nh;
    int i = (int)(t % S), g = h / (nh / nkv);
    int64_t seq0 = t - i, row = (t * nh + h) * hd;
    float qr[NV], dor[NV], dqr[NV], D = 0.f;
#pragma unroll
    for (int e = 0; e < NV; e++) {
        qr[e] = q[row + lane + 32 * e];
        dor[e] = dout[row + lane + 32 * e];
        dqr[e] = 0.f;
        D += dor[e] * out[row + lane + 32 * e];
    }
    D = warp_sum(D);
    float li = lse[t * nh + h];
    for (int j = first_key(i, window); j <= i; j++) {
        int64_t kv = ((seq0 + j) * nkv + g) * hd;
        float d = 0.f, dp = 0.f;
#pragma unroll
        for (int e = 0; e < NV; e++) d += qr[e] * k[kv + lane + 32 * e], dp += dor[e] * v[kv + lane + 32 * e];
        float s = warp_sum(d) * scale;
        dp = warp_sum(dp);
        if (cap > 0) s = cap * tanhf(s / cap);
        float p = expf(s - li), ds = p * (dp - D);
        if (cap > 0) ds *= 1.f - (s / cap) * (s / cap);
#pragma unroll
        for (int e = 0; e < NV; e++) {
            dqr[e] += scale * ds * k[kv + lane + 32 * e];
            if (dk) atomicAdd(dk + kv + lane + 32 * e, scale * ds * qr[e]);
            if (dv) atomicAdd(dv + kv + lane + 32 * e, p * dor[e]);
        }
    }
    if (dq)
#pragma unroll
        for (int e = 0; e < NV; e++) dq[row + lane + 32 * e] += dqr[e];
}

static int check_shape(int nh, int nkv, int hd) {
    if (hd % 32 || hd < 32 || hd > 256) return tn_fail("attention: head dim %d, expected a multiple of 32 up to 256", hd);
    if (nkv <= 0 || nh % nkv) return tn_fail("attention: %d query heads over %d kv heads", nh, nkv);
    return 0;
}

#define NV_SWITCH(hd, ...)                                                                                    \
    switch ((hd) / 32) {                                                                                      \
    case 1: { const int NV = 1; __VA_ARGS__; } break;                                                         \
    case 2: { const int NV = 2; __VA_ARGS__; } break;                                                         \
    case 3: { const int NV = 3; __VA_ARGS__; } break;                                                         \
    case 4: { const int NV = 4; __VA_ARGS__; } break;                                                         \
    case 5: { const int NV = 5; __VA_ARGS__; } break;                                                         \
    case 6: { const int NV = 6; __VA_ARGS__; } break;                                                         \
    case 7: { const int NV = 7; __VA_ARGS__; } break;                                                         \
    default: { const int NV = 8; __VA_ARGS__; } break;                                                        \
    }

extern "C" int tn_cuda_attention_forward(tn_cuda *c, float *out, float *lse, const float *q, const float *k,
                                         const float *v, int B, int S, int nh, int nkv, int hd, float scale,
                                         float softcap, int window) {
    if (B <= 0 || S <= 0 || nh <= 0) return 0;
    if (check_shape(nh, nkv, hd)) return -1;
    int64_t threads = (int64_t)B * S * nh * 32;
    NV_SWITCH(hd, attention_forward_kernel<NV><<<blocks_for(threads, 128), 128, 0, c->stream>>>(
                      out, lse, q, k, v, B, S, nh, nkv, hd, scale, softcap, window));
    LAUNCH_CHECK();
    return 0;
}

extern "C" int tn_cuda_attention_backward(tn_cuda *c, float *dq, float *dk, float *dv, const float *dout,
                                          const float *out, const float *lse, const float *q, const float *k,
                                          const float *v, int B, int S, int nh, int nkv, int hd, float scale,
                                          float softcap, int window) {
    if (B <= 0 || S <= 0 || nh <= 0) return 0;
    if (check_shape(nh, nkv, hd)) return -1;
    int64_t threads = (int64_t)B * S * nh * 32;
    NV_SWITCH(hd, attention_backward_kernel<NV><<<blocks_for(threads, 128), 128, 0, c->stream>>>(
                      dq, dk, dv, dout, out, lse, q, k, v, B, S, nh, nkv, hd, scale, softcap, window));
    LAUNCH_CHECK();
    return 0;
}
