/* matmul.cu - matrix products through cuBLASLt (as llm.c's matmul.cuh).
 *
 * Our tensors are row-major; cuBLASLt is column-major, where a row-major
 * [r, c] buffer reads as its transpose [c, r]. So each product is issued on
 * the transposes:
 *
 *     y  = x·Wᵀ   [T,out]  ->  yᵀ [out,T]  = W(col-major [in,out], transposed) · xᵀ [in,T]
 *     dx += dy·W  [T,in]   ->  dxᵀ [in,T]  = Wᵀ [in,out] · dyᵀ [out,T]
 *     dw += dyᵀ·x [out,in] ->  dwᵀ [in,out] = xᵀ [in,T] · (dyᵀ [out,T])ᵀ
 *
 * Accumulation is beta = 1 with C = D. Compute is fp32 (CUBLAS_COMPUTE_32F:
 * true fp32 for fp32 operands, fp32 accumulation for bf16 operands). */
#include <string.h>

#include "nn/cuda/common.cuh"

/* cuBLASLt's heuristic query costs more host time than a small product takes
 * on the device: its answer is kept per shape (types, transposes, sizes,
 * leading dimensions, bias, the alignment of each operand), in a small table
 * searched linearly. */
typedef struct {
    int key[15];
    cublasLtMatmulAlgo_t algo;
} algo_entry;
enum { ALGO_CACHE = 512 };
static algo_entry algo_cache[ALGO_CACHE];
static int algo_n;

static const cublasLtMatmulAlgo_t *algo_find(const int *key) {
    for (int i = 0; i < algo_n; i++)
        if (!memcmp(algo_cache[i].key, key, sizeof algo_cache[i].key)) return &algo_cache[i].algo;
    return NULL;
}

static void algo_put(const int *key, const cublasLtMatmulAlgo_t *a) {
    if (algo_n == ALGO_CACHE) return;
    memcpy(algo_cache[algo_n].key, key, sizeof algo_cache[algo_n].key);
    algo_cache[algo_n++].algo = *a;
}

static cudaDataType_t cuda_type(tn_dev_dtype dt) { return dt == TN_BF16 ? CUDA_R_16BF : CUDA_R_32F; }

/* The alignment an operand guarantees, pointer and row stride both (a column
 * block of a wider buffer is less aligned than the buffer), at most 256 bytes:
 * cuBLASLt's heuristic assumes 256 unless told, and the algorithm it picks may
 * need it. */
static uint32_t operand_align(const void *p, int ld, tn_dev_dtype dt) {
    uintptr_t v = (uintptr_t)p | ((uintptr_t)ld * tn_dev_dtype_size(dt)) | (uintptr_t)256;
    return (uint32_t)(v & (~v + 1));
}

/* D[m,n] = alpha·op(A)·op(B) + beta·C (column-major; C = D), with an optional fp32 bias added per row of D. */
static int lt_matmul(tn_cuda *c, void *d, tn_dev_dtype d_dt, const void *a, const void *b, tn_dev_dtype ab_dt, int m,
                     int n, int k, int trans_a, int trans_b, int lda, int ldb, int ldd, float alpha, float beta,
                     const float *bias) {
    cublasLtMatmulDesc_t op = NULL;
    cublasLtMatrixLayout_t la = NULL, lb = NULL, ld = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    cublasOperation_t ta = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, tb = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    cudaDataType_t abt = cuda_type(ab_dt), dtt = cuda_type(d_dt);
    int rc = -1, found = 0;
    cublasLtMatmulHeuristicResult_t heur;
    cublasStatus_t s;
#define LT(call)                                                                                              \
    do {                                                                                                      \
        s = (call);                                                                                           \
        if (s != CUBLAS_STATUS_SUCCESS) {                                                                     \
            tn_fail("%s:%d: %s: cuBLAS status %d (m=%d n=%d k=%d)", __FILE__, __LINE__, #call, (int)s, m, n, k); \
            goto done;                                                                                        \
        }                                                                                                     \
    } while (0)
    LT(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    if (bias) {
        cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
        cudaDataType_t bias_t = CUDA_R_32F;
        LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
        LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
        LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_t, sizeof bias_t));
    }
    LT(cublasLtMatrixLayoutCreate(&la, abt, trans_a ? k : m, trans_a ? m : k, lda));
    LT(cublasLtMatrixLayoutCreate(&lb, abt, trans_b ? n : k, trans_b ? k : n, ldb));
    LT(cublasLtMatrixLayoutCreate(&ld, dtt, m, n, ldd));
    {
        uint32_t al_a = operand_align(a, lda, ab_dt), al_b = operand_align(b, ldb, ab_dt), al_d = operand_align(d, ldd, d_dt);
        int key[15] = {(int)ab_dt, (int)d_dt, trans_a, trans_b, m, n, k, lda, ldb, ldd, bias != NULL, c->device,
                       (int)al_a, (int)al_b, (int)al_d};
        const cublasLtMatmulAlgo_t *cached = algo_find(key);
        if (cached) {
            heur.algo = *cached;
        } else {
            LT(cublasLtMatmulPreferenceCreate(&pref));
            LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &c->workspace_bytes,
                                                    sizeof c->workspace_bytes));
            LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof al_a));
            LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof al_b));
            LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_d, sizeof al_d));
            LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_d, sizeof al_d));
            LT(cublasLtMatmulAlgoGetHeuristic(c->lt, op, la, lb, ld, ld, pref, 1, &heur, &found));
            if (found == 0) {
                tn_fail("cuBLASLt has no algorithm for m=%d n=%d k=%d (types %d x %d)", m, n, k, (int)ab_dt, (int)d_dt);
                goto done;
            }
            algo_put(key, &heur.algo);
        }
    }
    LT(cublasLtMatmul(c->lt, op, &alpha, a, la, b, lb, &beta, d, ld, d, ld, &heur.algo, c->workspace,
                      c->workspace_bytes, c->stream));
    rc = 0;
#undef LT
done:
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (ld) cublasLtMatrixLayoutDestroy(ld);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (op) cublasLtMatmulDescDestroy(op);
    return rc;
}

static int check_types(tn_dev_dtype out_dt, tn_dev_dtype in_dt) {
    if (in_dt == TN_F32 && out_dt != TN_F32) return tn_fail("matmul: fp32 operands need an fp32 result");
    return 0;
}

extern "C" int tn_cuda_matmul_forward(tn_cuda *c, void *y, tn_dev_dtype out_dt, const void *x, const void *w,
                                      tn_dev_dtype in_dt, const float *bias, int T, int in, int out, int accumulate) {
    if (check_types(out_dt, in_dt)) return -1;
    if (bias && out_dt != TN_F32) return tn_fail("matmul: a bias needs an fp32 result (for now)");
    if (T <= 0 || out <= 0) return 0;
    return lt_matmul(c, y, out_dt, w, x, in_dt, out, T, in, 1, 0, in, in, out, 1.f, accumulate ? 1.f : 0.f, bias);
}

extern "C" int tn_cuda_matmul_backward(tn_cuda *c, void *dx, void *dw, tn_dev_dtype out_dt, const void *dy,
                                       const void *x, const void *w, tn_dev_dtype in_dt, int T, int in, int out) {
    if (check_types(out_dt, in_dt)) return -1;
    if (T <= 0) return 0;
    if (dx && lt_matmul(c, dx, out_dt, w, dy, in_dt, in, T, out, 0, 0, in, out, in, 1.f, 1.f, NULL)) return -1;
    if (dw && lt_matmul(c, dw, out_dt, x, dy, in_dt, in, out, T, 0, 1, in, out, in, 1.f, 1.f, NULL)) return -1;
    return 0;
}

/* The same three products with the scalars exposed (the LoRA path scales by
 * alpha/r inside the product; beta = 0 overwrites, 1 accumulates), and with
 * each operand's row stride (row-major leading dimension, in elements):
 *
 *   y[T,out] (ldy)   = alpha·x[T,in] (ldx)·W[out,in] (ldw)ᵀ + beta·y
 *   dx[T,in] (lddx)  = alpha·dy[T,out] (lddy)·W[out,in] (ldw) + beta·dx
 *   dw[out,in] (lddw) = alpha·dy[T,out] (lddy)ᵀ·x[T,in] (ldx) + beta·dw
 *
 * A row-major [r, c] buffer of stride ld is a column-major [c, r] one of
 * leading dimension ld, so each stride passes straight to its operand of
 * lt_matmul (the mapping in the comment at the top). */
static int check_ld(int ld, int cols, const char *what) {
    if (ld < cols || ld <= 0) return tn_fail("matmul: %s row stride %d is shorter than its %d columns", what, ld, cols);
    return 0;
}

extern "C" int tn_cuda_gemm_xwt_ld(tn_cuda *c, void *y, int ldy, tn_dev_dtype out_dt, const void *x, int ldx, const void *w, int ldw,
                                   tn_dev_dtype in_dt, int T, int in, int out, float alpha, float beta) {
    if (check_types(out_dt, in_dt)) return -1;
    if (T <= 0 || out <= 0) return 0;
    if (check_ld(ldy, out, "y") || check_ld(ldx, in, "x") || check_ld(ldw, in, "W")) return -1;
    return lt_matmul(c, y, out_dt, w, x, in_dt, out, T, in, 1, 0, ldw, ldx, ldy, alpha, beta, NULL);
}

extern "C" int tn_cuda_gemm_dyw_ld(tn_cuda *c, void *dx, int lddx, tn_dev_dtype out_dt, const void *dy, int lddy, const void *w, int ldw,
                                   tn_dev_dtype in_dt, int T, int in, int out, float alpha, float beta) {
    if (check_types(out_dt, in_dt)) return -1;
    if (T <= 0) return 0;
    if (check_ld(lddx, in, "dx") || check_ld(lddy, out, "dy") || check_ld(ldw, in, "W")) return -1;
    return lt_matmul(c, dx, out_dt, w, dy, in_dt, in, T, out, 0, 0, ldw, lddy, lddx, alpha, beta, NULL);
}

extern "C" int tn_cuda_gemm_dytx_ld(tn_cuda *c, void *dw, int lddw, tn_dev_dtype out_dt, const void *dy, int lddy, const void *x, int ldx,
                                    tn_dev_dtype in_dt, int T, int in, int out, float alpha, float beta) {
    if (check_types(out_dt, in_dt)) return -1;
    if (T <= 0) return 0;
    if (check_ld(lddw, in, "dw") || check_ld(lddy, out, "dy") || check_ld(ldx, in, "x")) return -1;
    return lt_matmul(c, dw, out_dt, x, dy, in_dt, in, out, T, 0, 1, ldx, lddy, lddw, alpha, beta, NULL);
}

extern "C" int tn_cuda_gemm_xwt(tn_cuda *c, void *y, tn_dev_dtype out_dt, const void *x, const void *w, tn_dev_dtype in_dt,
                                int T, int in, int out, float alpha, float beta) {
    return tn_cuda_gemm_xwt_ld(c, y, out, out_dt, x, in, w, in, in_dt, T, in, out, alpha, beta);
}

extern "C" int tn_cuda_gemm_dyw(tn_cuda *c, void *dx, tn_dev_dtype out_dt, const void *dy, const void *w, tn_dev_dtype in_dt,
                                int T, int in, int out, float alpha, float beta) {
    return tn_cuda_gemm_dyw_ld(c, dx, in, out_dt, dy, out, w, in, in_dt, T, in, out, alpha, beta);
}

extern "C" int tn_cuda_gemm_dytx(tn_cuda *c, void *dw, tn_dev_dtype out_dt, const void *dy, const void *x, tn_dev_dtype in_dt,
                                 int T, int in, int out, float alpha, float beta) {
    return tn_cuda_gemm_dytx_ld(c, dw, in, out_dt, dy, out, x, in, in_dt, T, in, out, alpha, beta);
}
