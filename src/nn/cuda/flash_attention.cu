/* flash_attention.cu - tensor-core flash attention for training: causal GQA
 * with sliding window and soft-cap, bf16 storage, fp32 accumulation
 * (FlashAttention-2's algorithm; nn/cpu/attention_impl.h is the reference,
 * attention.cu the simple fp32 kernel with the same conventions).
 *
 * Products are mma.sync m16n8k16 (bf16 in, fp32 accumulate) with operands
 * from shared memory through ldmatrix; tiles come in with cp.async (16-byte
 * chunks, zero-filled past the sequence's end) into shared memory laid out
 * with an XOR swizzle (16-byte chunk c of row r stored at chunk c ^ (r % 8)),
 * so that the eight rows an ldmatrix reads fall in distinct banks.
 *
 * Fragment layouts (PTX ISA, mma.m16n8k16): with lane = 4·gr + qd,
 *   A 16×16: a0 (gr, 2qd..+1), a1 (gr+8, 2qd..), a2 (gr, 2qd+8..), a3 (gr+8, 2qd+8..)
 *   B 16×8:  b0 (k 2qd..+1, n gr), b1 (k 2qd+8.., n gr)
 *   C 16×8:  c0,c1 (gr, 2qd..+1), c2,c3 (gr+8, 2qd..+1)
 * so a C tile of scores converts in registers into the A operand of the next
 * product (P·V), as in FlashAttention-2.
 *
 * Forward: a block per (sequence, query head, tile of BM queries), a warp per
 * 16 query rows; the key/value tiles the causal window leaves visible are
 * streamed through two shared-memory buffers; online softmax in base 2.
 * Backward: a block per (sequence, kv head, tile of 64 keys); it loops over
 * the group's query heads and their query tiles, so dk and dv of a kv head
 * are summed in registers in a fixed order (deterministic); dq is summed over
 * key tiles with fp32 atomics in the workspace, then scaled and rounded. */
#include <stdint.h>

#include "nn/cuda/common.cuh"
#include "nn/flash_plan.h"
#include "nn/flash_attention.h"

#define LOG2E 1.4426950408889634f
#define LN2 0.6931471805599453f

/* ---- device helpers --------------------------------------------------- */

__device__ __forceinline__ uint32_t smem_addr(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

/* 16 bytes global -> shared, asynchronously; bytes = 0 fills the 16 bytes with zeros. */
__device__ __forceinline__ void cp_async16(void *dst, const void *src, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const bf16 *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], const bf16 *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}

/* d += a·b, 16×8 fp32 += 16×16 bf16 · 16×8 bf16. */
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Two floats as a bf16 pair (lo in the low half: the lower column index). */
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}

__device__ __forceinline__ float fast_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

/* c·tanh(x/c), tanh(t) = 1 − 2/(e^{2t} + 1): exact limits ±1, absolute error ~1e-7 (the score's error is
 * c times that, far under what exp of a score notices). */
__device__ __forceinline__ float softcap_of(float x, float c) {
    float e = fast_exp2(2.f * LOG2E * x / c);
    return c * (1.f - 2.f / (e + 1.f));
}

/* Element offset of (row r, 16-byte chunk ch) in a swizzled tile with rows of W bf16 (W/8 ≥ 8 chunks). */
template <int W> __device__ __forceinline__ int swz(int r, int ch) { return r * W + ((ch ^ (r & 7)) << 3); }

/* ldmatrix addresses for one lane (lane = threadIdx.x % 32):
 * a_off:  A operand 16×16 of a row-major tile: rows r0..r0+15, columns 16·c2..+15 (-> a0..a3);
 * b_off:  B operand of a tile stored [n][k] (k contiguous): rows n0..n0+15 (two n-tiles of 8), columns 16·c2..
 *         (-> b0, b1 of n-tile 0, b0, b1 of n-tile 1); also the A operand of a tile stored [k][m] with .trans;
 * bt_off: B operand of a tile stored [k][n] (n contiguous), with .trans: rows k0..k0+15, columns 16·c2..
 *         (-> b0, b1 of n-tile 0, b0, b1 of n-tile 1). */
template <int W> __device__ __forceinline__ int a_off(int r0, int c2, int lane) {
    return swz<W>(r0 + (lane & 7) + ((lane >> 3) & 1) * 8, c2 * 2 + (lane >> 4));
}
template <int W> __device__ __forceinline__ int b_off(int n0, int c2, int lane) {
    return swz<W>(n0 + (lane & 7) + (lane >> 4) * 8, c2 * 2 + ((lane >> 3) & 1));
}
template <int W> __device__ __forceinline__ int bt_off(int k0, int c2, int lane) {
    return swz<W>(k0 + (lane & 7) + ((lane >> 3) & 1) * 8, c2 * 2 + (lane >> 4));
}

/* ROWS rows of HD bf16 from g (row stride ld elements) into the swizzled tile sm; rows ≥ valid are zeros. */
template <int ROWS, int HD, int NT>
__device__ __forceinline__ void load_tile(bf16 *sm, const bf16 *g, int64_t ld, int valid) {
    constexpr int CPR = HD / 8;
#pragma unroll
    for (int c = threadIdx.x; c < ROWS * CPR; c += NT) {
        int r = c / CPR, ch = c % CPR, ok = r < valid;
        cp_async16(sm + swz<HD>(r, ch), g + (ok ? (int64_t)r * ld : 0) + ch * 8, ok ? 16 : 0);
    }
}

/* Key j visible to query i. */
__device__ __forceinline__ bool visible(int i, int j, int S, int window) {
    return j <= i && j < S && (window <= 0 || j > i - window);
}

/* True when every (query, key) of the tile pair [i0, i0+BM) × [j0, j0+BN) is visible (no mask needed). */
__device__ __forceinline__ bool tile_all_visible(int i0, int BM, int j0, int BN, int S, int window) {
    return j0 + BN - 1 <= i0 && j0 + BN <= S && i0 + BM <= S && (window <= 0 || j0 > i0 + BM - 1 - window);
}

/* ---- forward ---------------------------------------------------------- */

/* For the BM = 16·MT·NW queries i of one (sequence b, head h) and their kv head g:
 *
 *     s_ij  = scale · q_i · k_j, then c · tanh(s_ij / c) when c > 0      j visible to i
 *     m_i   = max_j s_ij,  l_i = Σ_j exp(s_ij − m_i),  out_i = Σ_j exp(s_ij − m_i) v_j / l_i
 *     lse_i = m_i + log l_i
 *
 * over key tiles of BN with the online-softmax update (in base 2: t = s·log2 e):
 *     m' = max(m, max_j t_ij),  l ← l·2^{m−m'} + Σ_j 2^{t_ij − m'},  acc ← acc·2^{m−m'} + P·V.
 * Warp w owns MT m-tiles of 16 query rows (S = Q·Kᵀ: 16·MT × BN, then acc += P·V: 16·MT × HD), so each K and V
 * fragment read from shared memory feeds MT products; with MT = 1 and hd ≤ 128 the Q fragments stay in
 * registers. P is rounded to bf16 for the product (l sums the fp32 values). */
template <int HD, int BN, int NW, int MT>
__global__ void __launch_bounds__(NW * 32, 1)
    flash_forward_kernel(bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v, int S, int nh, int nkv,
                         float scale, float cap, int window) {
    constexpr int BM = 16 * MT * NW, NT = NW * 32;
    constexpr bool QREG = MT == 1 && HD <= 128;
    extern __shared__ uint4 smem_fwd[];
    bf16 *sq = (bf16 *)smem_fwd, *sk = sq + BM * HD, *sv = sk + 2 * BN * HD;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int h = blockIdx.x % nh, b = blockIdx.x / nh, g = h / (nh / nkv);
    const int i0 = (gridDim.y - 1 - blockIdx.y) * BM; /* longest tiles first */
    const int64_t ldq = (int64_t)nh * HD, ldk = (int64_t)nkv * HD;
    const bf16 *kb = k + (int64_t)b * S * ldk + g * HD, *vb = v + (int64_t)b * S * ldk + g * HD;
    const int i_last = min(S, i0 + BM) - 1;
    const int kt0 = window > 0 ? max(0, i0 - window + 1) / BN : 0, kt1 = i_last / BN + 1;

    load_tile<BM, HD, NT>(sq, q + ((int64_t)b * S + i0) * ldq + h * HD, ldq, S - i0);
    load_tile<BN, HD, NT>(sk, kb + (int64_t)kt0 * BN * ldk, ldk, S - kt0 * BN);
    load_tile<BN, HD, NT>(sv, vb + (int64_t)kt0 * BN * ldk, ldk, S - kt0 * BN);
    cp_async_commit();

    float o[MT][HD / 8][4], m[MT][2], l[MT][2];
#pragma unroll
    for (int t = 0; t < MT; t++) {
#pragma unroll
        for (int d = 0; d < HD / 8; d++) o[t][d][0] = o[t][d][1] = o[t][d][2] = o[t][d][3] = 0.f;
        m[t][0] = m[t][1] = -INFINITY, l[t][0] = l[t][1] = 0.f;
    }
    uint32_t qf[QREG ? HD / 16 : 1][4];
    /* scores are kept raw (no cap) or capped in base-2 units; t_scale takes them to base-2 units inside the
     * exponent's FFMA: t = s·t_scale */
    const float t_scale = cap > 0 ? 1.f : scale * LOG2E;
    const int wrow = warp * 16 * MT;                 /* first row of this warp in the tile */
    const int row0 = i0 + wrow + lane / 4;           /* this thread's rows: row0 + 16·t + {0, 8} */

    for (int kt = kt0; kt < kt1; kt++) {
        const int buf = (kt - kt0) & 1;
        if (kt + 1 < kt1) {
            load_tile<BN, HD, NT>(sk + (buf ^ 1) * BN * HD, kb + (int64_t)(kt + 1) * BN * ldk, ldk, S - (kt + 1) * BN);
            load_tile<BN, HD, NT>(sv + (buf ^ 1) * BN * HD, vb + (int64_t)(kt + 1) * BN * ldk, ldk, S - (kt + 1) * BN);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        if (QREG && kt == kt0)
#pragma unroll
            for (int kk = 0; kk < (QREG ? HD / 16 : 1); kk++) ldsm_x4(qf[kk], sq + a_off<HD>(wrow, kk, lane));
        const bf16 *skb = sk + buf * BN * HD, *svb = sv + buf * BN * HD;

        /* S = Q·Kᵀ, 16·MT × BN per warp */
        float s[MT][BN / 8][4];
#pragma unroll
        for (int t = 0; t < MT; t++)
#pragma unroll
            for (int n = 0; n < BN / 8; n++) s[t][n][0] = s[t][n][1] = s[t][n][2] = s[t][n][3] = 0.f;
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk++) {
            uint32_t a[MT][4];
#pragma unroll
            for (int t = 0; t < MT; t++) {
                if constexpr (QREG) {
                    a[t][0] = qf[kk][0], a[t][1] = qf[kk][1], a[t][2] = qf[kk][2], a[t][3] = qf[kk][3];
                } else {
                    ldsm_x4(a[t], sq + a_off<HD>(wrow + 16 * t, kk, lane));
                }
            }
#pragma unroll
            for (int n2 = 0; n2 < BN / 16; n2++) {
                uint32_t bk[4];
                ldsm_x4(bk, skb + b_off<HD>(n2 * 16, kk, lane));
#pragma unroll
                for (int t = 0; t < MT; t++) {
                    mma16816(s[t][2 * n2], a[t], bk[0], bk[1]);
                    mma16816(s[t][2 * n2 + 1], a[t], bk[2], bk[3]);
                }
            }
        }

        /* capped scores in base-2 units; masked to -inf */
        const int j0 = kt * BN;
        const bool masked = !tile_all_visible(i0, BM, j0, BN, S, window);
        if (cap > 0 || masked)
#pragma unroll
        for (int t = 0; t < MT; t++)
#pragma unroll
            for (int n = 0; n < BN / 8; n++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    float x = s[t][n][e];
                    if (cap > 0) x = softcap_of(x * scale, cap) * LOG2E;
                    if (masked &&
                        !visible(row0 + 16 * t + (e >> 1) * 8, j0 + n * 8 + (lane % 4) * 2 + (e & 1), S, window))
                        x = -INFINITY;
                    s[t][n][e] = x;
                }

        /* online softmax: a row is spread over the 4 lanes of a quad */
#pragma unroll
        for (int t = 0; t < MT; t++)
#pragma unroll
            for (int r = 0; r < 2; r++) {
                float mx = m[t][r];
#pragma unroll
                for (int n = 0; n < BN / 8; n++) mx = fmaxf(mx, fmaxf(s[t][n][2 * r], s[t][n][2 * r + 1]));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
                const float mu = mx == -INFINITY ? 0.f : mx * t_scale; /* a row with nothing visible yet: 0 */
                const float corr = fast_exp2(m[t][r] * t_scale - mu);
                m[t][r] = mx;
                float sum = 0.f;
#pragma unroll
                for (int n = 0; n < BN / 8; n++) {
                    s[t][n][2 * r] = fast_exp2(fmaf(s[t][n][2 * r], t_scale, -mu));
                    s[t][n][2 * r + 1] = fast_exp2(fmaf(s[t][n][2 * r + 1], t_scale, -mu));
                    sum += s[t][n][2 * r] + s[t][n][2 * r + 1];
                }
                l[t][r] = l[t][r] * corr + sum;
#pragma unroll
                for (int d = 0; d < HD / 8; d++) o[t][d][2 * r] *= corr, o[t][d][2 * r + 1] *= corr;
            }

        /* acc += P·V: P from the score registers, V [keys][d] through ldmatrix.trans */
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++) {
            uint32_t a[MT][4];
#pragma unroll
            for (int t = 0; t < MT; t++) {
                a[t][0] = pack_bf16(s[t][2 * kk][0], s[t][2 * kk][1]);
                a[t][1] = pack_bf16(s[t][2 * kk][2], s[t][2 * kk][3]);
                a[t][2] = pack_bf16(s[t][2 * kk + 1][0], s[t][2 * kk + 1][1]);
                a[t][3] = pack_bf16(s[t][2 * kk + 1][2], s[t][2 * kk + 1][3]);
            }
#pragma unroll
            for (int d2 = 0; d2 < HD / 16; d2++) {
                uint32_t bv[4];
                ldsm_x4_t(bv, svb + bt_off<HD>(kk * 16, d2, lane));
#pragma unroll
                for (int t = 0; t < MT; t++) {
                    mma16816(o[t][2 * d2], a[t], bv[0], bv[1]);
                    mma16816(o[t][2 * d2 + 1], a[t], bv[2], bv[3]);
                }
            }
        }
        __syncthreads(); /* this buffer is refilled by the next iteration's load */
    }

#pragma unroll
    for (int t = 0; t < MT; t++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            float lr = l[t][r];
            lr += __shfl_xor_sync(0xffffffffu, lr, 1);
            lr += __shfl_xor_sync(0xffffffffu, lr, 2);
            const int i = row0 + 16 * t + r * 8;
            if (i >= S) continue;
            const float inv = 1.f / lr;
            bf16 *orow = out + ((int64_t)b * S + i) * ldq + h * HD + (lane % 4) * 2;
#pragma unroll
            for (int d = 0; d < HD / 8; d++)
                *reinterpret_cast<uint32_t *>(orow + d * 8) =
                    pack_bf16(o[t][d][2 * r] * inv, o[t][d][2 * r + 1] * inv);
            if (lane % 4 == 0) lse[((int64_t)b * S + i) * nh + h] = (m[t][r] * t_scale + log2f(lr)) * LN2;
        }
}

/* ---- backward --------------------------------------------------------- */

/* D[t·nh + h] = Σ_d dout[t, h, d] · out[t, h, d]: a warp per (token, head) row. */
__global__ void flash_rowdot_kernel(float *D, const bf16 *dout, const bf16 *out, int64_t rows, int hd) {
    int64_t w = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x % 32;
    if (w >= rows) return;
    const __nv_bfloat162 *a = reinterpret_cast<const __nv_bfloat162 *>(dout + w * hd);
    const __nv_bfloat162 *c = reinterpret_cast<const __nv_bfloat162 *>(out + w * hd);
    float sum = 0.f;
    for (int e = lane; e < hd / 2; e += 32) {
        float2 x = __bfloat1622float2(a[e]), y = __bfloat1622float2(c[e]);
        sum += x.x * y.x + x.y * y.y;
    }
    sum = warp_sum(sum);
    if (lane == 0) D[w] = sum;
}

/* dq = scale · acc, rounded to bf16; n4 groups of 4. */
__global__ void flash_dq_kernel(bf16 *dq, const float *acc, int64_t n4, float scale) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n4) return;
    float4 a = reinterpret_cast<const float4 *>(acc)[i];
    uint2 o = {pack_bf16(a.x * scale, a.y * scale), pack_bf16(a.z * scale, a.w * scale)};
    reinterpret_cast<uint2 *>(dq)[i] = o;
}

/* dk = Σ_p dk_part[p], dv likewise (parts in order: deterministic), rounded to bf16; n4 groups of 4. */
__global__ void flash_dkv_kernel(bf16 *dk, bf16 *dv, const float *dk_part, const float *dv_part, int64_t n4,
                                 int parts) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n4) return;
    float4 a = reinterpret_cast<const float4 *>(dk_part)[i], c = reinterpret_cast<const float4 *>(dv_part)[i];
    for (int p = 1; p < parts; p++) {
        float4 x = reinterpret_cast<const float4 *>(dk_part)[i + p * n4], y = reinterpret_cast<const float4 *>(dv_part)[i + p * n4];
        a.x += x.x, a.y += x.y, a.z += x.z, a.w += x.w, c.x += y.x, c.y += y.y, c.z += y.z, c.w += y.w;
    }
    reinterpret_cast<uint2 *>(dk)[i] = make_uint2(pack_bf16(a.x, a.y), pack_bf16(a.z, a.w));
    reinterpret_cast<uint2 *>(dv)[i] = make_uint2(pack_bf16(c.x, c.y), pack_bf16(c.z, c.w));
}

/* For the 64 keys j of one (sequence b, kv head g), over every query head h of the group and every query
 * tile [i0, i0 + 64) that sees them (or, split in gridDim.z parts, over a part of the group's heads, the parts
 * written in fp32 to dk_part, dv_part and summed afterwards: the causal key tiles differ in work by S/64, and
 * with few kv heads the longest would otherwise set the time), with p_ij = exp(s_ij − lse_i), D_i = dout_i · out_i:
 *
 *     dp_ij = dout_i · v_j,   ds_ij = p_ij (dp_ij − D_i) · (1 − (s_ij/c)²  when capped)
 *     dv_j += Σ_i p_ij dout_i,   dk_j += scale Σ_i ds_ij q_i,   dq_i += scale Σ_j ds_ij k_j
 *
 * Warp w owns keys 16·(w % 4).. and, for hd 256 (DSPLIT 2, 8 warps), the half w / 4 of the dk, dv columns
 * (Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ, 16 × 64, are then computed by both warps of a key slice). dSᵀ goes through
 * shared memory (bf16) for dQ = dS·K, split over the warps by (16 queries, columns), added with fp32
 * atomics into dq_acc. P and dS are rounded to bf16 as operands of the products. */
template <int HD, int DSPLIT>
__global__ void __launch_bounds__(128 * DSPLIT, 1)
    flash_backward_kernel(float *dq_acc, bf16 *dk, bf16 *dv, float *dk_part, float *dv_part, const bf16 *dout,
                          const float *lse, const float *Drow,
                          const bf16 *q, const bf16 *k, const bf16 *v, int S, int nh, int nkv, float scale, float cap,
                          int window) {
    constexpr int BN = 64, BM = 64, NW = 4 * DSPLIT, NT = NW * 32, HDW = HD / DSPLIT;
    extern __shared__ uint4 smem_bwd[];
    bf16 *sk = (bf16 *)smem_bwd, *sv = sk + BN * HD, *sq = sv + BN * HD, *sdo = sq + 2 * BM * HD;
    bf16 *sds = sdo + 2 * BM * HD;
    float *slse = (float *)(sds + BN * BM), *sD = slse + 2 * BM;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int kw = warp % 4, dh = warp / 4;
    const int g = blockIdx.x % nkv, b = blockIdx.x / nkv;
    const int group = nh / nkv / gridDim.z, h_first = g * (nh / nkv) + blockIdx.z * group; /* this block's heads */
    const int j0 = blockIdx.y * BN; /* first key tiles (the longest) first */
    const int64_t ldq = (int64_t)nh * HD, ldk = (int64_t)nkv * HD;
    const int qt0 = j0 / BM, nqt = (S + BM - 1) / BM;
    const int qt1 = window > 0 ? min(nqt, (j0 + BN - 2 + window) / BM + 1) : nqt;
    const int per_head = qt1 - qt0, n_iter = group * per_head;
    const float scale_log2 = scale * LOG2E;

    load_tile<BN, HD, NT>(sk, k + ((int64_t)b * S + j0) * ldk + g * HD, ldk, S - j0);
    load_tile<BN, HD, NT>(sv, v + ((int64_t)b * S + j0) * ldk + g * HD, ldk, S - j0);
    /* Q, dO tiles, lse (base 2; +inf past the end so that p = 0) and D of iteration it into buffer buf */
    auto load_q = [&](int it, int buf) {
        const int h = h_first + it / per_head, i0 = (qt0 + it % per_head) * BM;
        const int64_t row = (int64_t)b * S + i0;
        load_tile<BM, HD, NT>(sq + buf * BM * HD, q + row * ldq + h * HD, ldq, S - i0);
        load_tile<BM, HD, NT>(sdo + buf * BM * HD, dout + row * ldq + h * HD, ldq, S - i0);
        for (int r = threadIdx.x; r < BM; r += NT) {
            const bool ok = i0 + r < S;
            slse[buf * BM + r] = ok ? lse[(row + r) * nh + h] * LOG2E : INFINITY;
            sD[buf * BM + r] = ok ? Drow[(row + r) * nh + h] : 0.f;
        }
    };
    load_q(0, 0);
    cp_async_commit();

    float dka[HDW / 8][4], dva[HDW / 8][4];
#pragma unroll
    for (int d = 0; d < HDW / 8; d++)
#pragma unroll
        for (int e = 0; e < 4; e++) dka[d][e] = dva[d][e] = 0.f;

    for (int it = 0; it < n_iter; it++) {
        const int buf = it & 1;
        if (it + 1 < n_iter) {
            load_q(it + 1, buf ^ 1);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const int h = h_first + it / per_head, i0 = (qt0 + it % per_head) * BM;
        const bf16 *sqb = sq + buf * BM * HD, *sdob = sdo + buf * BM * HD;
        const float *sl = slse + buf * BM, *sd = sD + buf * BM;

        /* Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ: this warp's 16 keys × 64 queries, over all of hd */
        float s[BM / 8][4], dp[BM / 8][4];
#pragma unroll
        for (int n = 0; n < BM / 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) s[n][e] = dp[n][e] = 0.f;
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk++) {
            uint32_t ak[4];
            ldsm_x4(ak, sk + a_off<HD>(kw * 16, kk, lane));
#pragma unroll
            for (int n2 = 0; n2 < BM / 16; n2++) {
                uint32_t bq[4];
                ldsm_x4(bq, sqb + b_off<HD>(n2 * 16, kk, lane));
                mma16816(s[2 * n2], ak, bq[0], bq[1]);
                mma16816(s[2 * n2 + 1], ak, bq[2], bq[3]);
            }
        }
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk++) {
            uint32_t av[4];
            ldsm_x4(av, sv + a_off<HD>(kw * 16, kk, lane));
#pragma unroll
            for (int n2 = 0; n2 < BM / 16; n2++) {
                uint32_t bo[4];
                ldsm_x4(bo, sdob + b_off<HD>(n2 * 16, kk, lane));
                mma16816(dp[2 * n2], av, bo[0], bo[1]);
                mma16816(dp[2 * n2 + 1], av, bo[2], bo[3]);
            }
        }

        /* p and ds, elementwise: s becomes p, dp becomes ds */
        const bool masked = !tile_all_visible(i0, BM, j0, BN, S, window);
#pragma unroll
        for (int n = 0; n < BM / 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int il = n * 8 + (lane % 4) * 2 + (e & 1), j = j0 + kw * 16 + lane / 4 + (e >> 1) * 8;
                float p, f = 1.f;
                if (cap > 0) {
                    const float x = softcap_of(s[n][e] * scale, cap);
                    f = 1.f - (x / cap) * (x / cap);
                    p = fast_exp2(x * LOG2E - sl[il]);
                } else {
                    p = fast_exp2(fmaf(s[n][e], scale_log2, -sl[il]));
                }
                if (masked && !visible(i0 + il, j, S, window)) p = 0.f;
                s[n][e] = p;
                dp[n][e] = p * (dp[n][e] - sd[il]) * f;
            }

        /* dV += Pᵀ·dO and dK += dSᵀ·Q over this warp's columns; dO, Q [queries][d] through ldmatrix.trans */
#pragma unroll
        for (int kk = 0; kk < BM / 16; kk++) {
            uint32_t ap[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                              pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                              pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
            uint32_t as[4] = {pack_bf16(dp[2 * kk][0], dp[2 * kk][1]), pack_bf16(dp[2 * kk][2], dp[2 * kk][3]),
                              pack_bf16(dp[2 * kk + 1][0], dp[2 * kk + 1][1]),
                              pack_bf16(dp[2 * kk + 1][2], dp[2 * kk + 1][3])};
#pragma unroll
            for (int d2 = 0; d2 < HDW / 16; d2++) {
                uint32_t bo[4], bq[4];
                ldsm_x4_t(bo, sdob + bt_off<HD>(kk * 16, dh * (HDW / 16) + d2, lane));
                ldsm_x4_t(bq, sqb + bt_off<HD>(kk * 16, dh * (HDW / 16) + d2, lane));
                mma16816(dva[2 * d2], ap, bo[0], bo[1]);
                mma16816(dva[2 * d2 + 1], ap, bo[2], bo[3]);
                mma16816(dka[2 * d2], as, bq[0], bq[1]);
                mma16816(dka[2 * d2 + 1], as, bq[2], bq[3]);
            }
        }

        /* dSᵀ -> shared memory, [key][query] */
        if (dh == 0)
#pragma unroll
            for (int n = 0; n < BM / 8; n++)
#pragma unroll
                for (int r = 0; r < 2; r++) {
                    const int jl = kw * 16 + lane / 4 + r * 8, il = n * 8 + (lane % 4) * 2;
                    *reinterpret_cast<uint32_t *>(sds + swz<BM>(jl, il / 8) + il % 8) =
                        pack_bf16(dp[n][2 * r], dp[n][2 * r + 1]);
                }
        __syncthreads();

        /* dq_acc += dS·K: warp -> queries 16·(w % 4).., columns of half w / 4, 32 at a time */
        {
            uint32_t ads[BN / 16][4];
#pragma unroll
            for (int kk = 0; kk < BN / 16; kk++) ldsm_x4_t(ads[kk], sds + b_off<BM>(kk * 16, kw, lane));
            const int irow = i0 + kw * 16 + lane / 4;
            float *dqr = dq_acc + ((int64_t)b * S + irow) * ldq + h * HD + (lane % 4) * 2;
#pragma unroll
            for (int dc = 0; dc < HDW / 32; dc++) {
                float acc[4][4];
#pragma unroll
                for (int n = 0; n < 4; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;
#pragma unroll
                for (int kk = 0; kk < BN / 16; kk++)
#pragma unroll
                    for (int d2 = 0; d2 < 2; d2++) {
                        uint32_t bk[4];
                        ldsm_x4_t(bk, sk + bt_off<HD>(kk * 16, (dh * HDW + dc * 32) / 16 + d2, lane));
                        mma16816(acc[2 * d2], ads[kk], bk[0], bk[1]);
                        mma16816(acc[2 * d2 + 1], ads[kk], bk[2], bk[3]);
                    }
#pragma unroll
                for (int n = 0; n < 4; n++) {
                    const int col = dh * HDW + dc * 32 + n * 8;
                    if (irow < S) atomicAdd(reinterpret_cast<float2 *>(dqr + col), make_float2(acc[n][0], acc[n][1]));
                    if (irow + 8 < S)
                        atomicAdd(reinterpret_cast<float2 *>(dqr + 8 * ldq + col), make_float2(acc[n][2], acc[n][3]));
                }
            }
        }
    }

#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int j = j0 + kw * 16 + lane / 4 + r * 8;
        if (j >= S) continue;
        const int64_t at = ((int64_t)b * S + j) * ldk + g * HD + dh * HDW + (lane % 4) * 2;
        if (dk_part) { /* the part of the group's heads this block took: fp32, summed by flash_dkv_kernel */
            const int64_t pat = at + (int64_t)blockIdx.z * gridDim.x / nkv * S * ldk;
#pragma unroll
            for (int d = 0; d < HDW / 8; d++) {
                *reinterpret_cast<float2 *>(dk_part + pat + d * 8) =
                    make_float2(dka[d][2 * r] * scale, dka[d][2 * r + 1] * scale);
                *reinterpret_cast<float2 *>(dv_part + pat + d * 8) = make_float2(dva[d][2 * r], dva[d][2 * r + 1]);
            }
            continue;
        }
#pragma unroll
        for (int d = 0; d < HDW / 8; d++) {
            *reinterpret_cast<uint32_t *>(dk + at + d * 8) = pack_bf16(dka[d][2 * r] * scale, dka[d][2 * r + 1] * scale);
            *reinterpret_cast<uint32_t *>(dv + at + d * 8) = pack_bf16(dva[d][2 * r], dva[d][2 * r + 1]);
        }
    }
}

/* ---- host side -------------------------------------------------------- */

static int check_flash_shape(int nh, int nkv, int hd) {
    if (hd != 64 && hd != 128 && hd != 256) return tn_fail("flash attention: head dim %d, expected 64, 128 or 256", hd);
    if (nkv <= 0 || nh % nkv) return tn_fail("flash attention: %d query heads over %d kv heads", nh, nkv);
    return 0;
}

template <int HD, int BN, int NW, int MT>
static int launch_forward(tn_cuda *c, bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v, int B, int S,
                          int nh, int nkv, float scale, float softcap, int window) {
    constexpr int BM = 16 * MT * NW;
    const size_t smem = (size_t)(BM * HD + 4 * BN * HD) * sizeof(bf16);
    auto kernel = flash_forward_kernel<HD, BN, NW, MT>;
    CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    dim3 grid((unsigned)(B * nh), (unsigned)((S + BM - 1) / BM));
    kernel<<<grid, NW * 32, smem, c->stream>>>(out, lse, q, k, v, S, nh, nkv, scale, softcap, window);
    LAUNCH_CHECK();
    return 0;
}

template <int HD, int DSPLIT>
static int launch_backward(tn_cuda *c, float *dq_acc, bf16 *dk, bf16 *dv, float *dk_part, float *dv_part, int parts,
                           const bf16 *dout, const float *lse, const float *D, const bf16 *q, const bf16 *k,
                           const bf16 *v, int B, int S, int nh, int nkv, float scale, float softcap, int window) {
    constexpr int BN = 64, BM = 64;
    const size_t smem = (size_t)(2 * BN * HD + 4 * BM * HD + BN * BM) * sizeof(bf16) + 4 * BM * sizeof(float);
    auto kernel = flash_backward_kernel<HD, DSPLIT>;
    CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    dim3 grid((unsigned)(B * nkv), (unsigned)((S + BN - 1) / BN), (unsigned)parts);
    kernel<<<grid, 128 * DSPLIT, smem, c->stream>>>(dq_acc, dk, dv, parts > 1 ? dk_part : NULL,
                                                    parts > 1 ? dv_part : NULL, dout, lse, D, q, k, v, S, nh, nkv,
                                                    scale, softcap, window);
    LAUNCH_CHECK();
    return 0;
}

extern "C" int tn_cuda_flash_attention_forward(tn_cuda *c, void *out, float *lse, const void *q, const void *k,
                                               const void *v, int B, int S, int nh, int nkv, int hd, float scale,
                                               float softcap, int window) {
    if (check_flash_shape(nh, nkv, hd)) return -1;
    if (B <= 0 || S <= 0 || nh <= 0) return 0;
    bf16 *o = (bf16 *)out;
    const bf16 *q_ = (const bf16 *)q, *k_ = (const bf16 *)k, *v_ = (const bf16 *)v;
    /* hd ≤ 128: 4 warps of 2 m-tiles, 128 queries, 64 keys a tile (H100: 233 TFLOP/s on Llama-3.2-3B's shape,
     * against 200 for 8 warps of 1 m-tile and 219 for 32 keys a tile); hd 256: 4 warps of 1 m-tile, 64 queries,
     * 32 keys (the 16 × 256 fp32 accumulator is already 128 registers a thread) */
    switch (hd) {
    case 64: return launch_forward<64, 64, 4, 2>(c, o, lse, q_, k_, v_, B, S, nh, nkv, scale, softcap, window);
    case 128: return launch_forward<128, 64, 4, 2>(c, o, lse, q_, k_, v_, B, S, nh, nkv, scale, softcap, window);
    default: return launch_forward<256, 32, 4, 1>(c, o, lse, q_, k_, v_, B, S, nh, nkv, scale, softcap, window);
    }
}

/* In how many parts the backward splits each group's query heads (a divisor of nh/nkv). The blocks (one per
 * sequence, kv head, 64-key tile, part) differ in work: the tile at key j0 meets the query tiles from j0 on
 * (with a window, at most window/64 + 2 of them) for each head of its part. With W the total work and about
 * 2·132 blocks resident at once (1·132 for hd 256: an H100/H200), the longest block should take at most 2/3 of
 * a resident block's share W/slots, else the last wave runs nearly alone; the smallest such part count is
 * taken (each part beyond one writes fp32 partial dk, dv). Depends on the sizes only, so that the workspace
 * size is known without a device. */
static int flash_parts(int B, int S, int nh, int nkv, int hd, int window) { return tn_flash_parts(B, S, nh, nkv, hd, window); }

/* dq_acc [B·S·nh·hd] fp32, D [B·S·nh] fp32, then with parts > 1 dk_part, dv_part [parts, B·S·nkv·hd] fp32. */
extern "C" size_t tn_cuda_flash_attention_workspace(int B, int S, int nh, int nkv, int hd) {
    return tn_flash_workspace_bytes(B, S, nh, nkv, hd);
}

extern "C" int tn_cuda_flash_attention_backward(tn_cuda *c, void *dq, void *dk, void *dv, const void *dout,
                                                const void *out, const float *lse, const void *q, const void *k,
                                                const void *v, void *workspace, int B, int S, int nh, int nkv, int hd,
                                                float scale, float softcap, int window) {
    if (check_flash_shape(nh, nkv, hd)) return -1;
    if (B <= 0 || S <= 0 || nh <= 0) return 0;
    if (!workspace) return tn_fail("flash attention backward: no workspace");
    const int64_t rows = (int64_t)B * S * nh, n = rows * hd, nk = (int64_t)B * S * nkv * hd;
    float *dq_acc = (float *)workspace, *D = dq_acc + n;
    /* the workspace holds the parts of the causal case, the most: a window only shortens the long blocks */
    int parts = flash_parts(B, S, nh, nkv, hd, window), most = flash_parts(B, S, nh, nkv, hd, 0);
    if (parts > most) parts = most;
    float *dk_part = D + rows, *dv_part = dk_part + (int64_t)parts * nk;
    CUDA_TRY(cudaMemsetAsync(dq_acc, 0, (size_t)n * sizeof(float), c->stream));
    flash_rowdot_kernel<<<blocks_for(rows * 32, 256), 256, 0, c->stream>>>(D, (const bf16 *)dout, (const bf16 *)out,
                                                                            rows, hd);
    LAUNCH_CHECK();
    bf16 *dk_ = (bf16 *)dk, *dv_ = (bf16 *)dv;
    const bf16 *do_ = (const bf16 *)dout, *q_ = (const bf16 *)q, *k_ = (const bf16 *)k, *v_ = (const bf16 *)v;
    int rc;
    switch (hd) {
    case 64:
        rc = launch_backward<64, 1>(c, dq_acc, dk_, dv_, dk_part, dv_part, parts, do_, lse, D, q_, k_, v_, B, S, nh,
                                    nkv, scale, softcap, window);
        break;
    case 128:
        rc = launch_backward<128, 1>(c, dq_acc, dk_, dv_, dk_part, dv_part, parts, do_, lse, D, q_, k_, v_, B, S, nh,
                                     nkv, scale, softcap, window);
        break;
    default:
        rc = launch_backward<256, 2>(c, dq_acc, dk_, dv_, dk_part, dv_part, parts, do_, lse, D, q_, k_, v_, B, S, nh,
                                     nkv, scale, softcap, window);
        break;
    }
    if (rc) return rc;
    flash_dq_kernel<<<blocks_for(n / 4, 256), 256, 0, c->stream>>>((bf16 *)dq, dq_acc, n / 4, scale);
    LAUNCH_CHECK();
    if (parts > 1) {
        flash_dkv_kernel<<<blocks_for(nk / 4, 256), 256, 0, c->stream>>>(dk_, dv_, dk_part, dv_part, nk / 4, parts);
        LAUNCH_CHECK();
    }
    return 0;
}
