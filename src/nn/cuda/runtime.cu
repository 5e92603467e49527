/* runtime.cu - the CUDA context (device, stream, cuBLASLt handle and
 * workspace), memory, copies, conversions and event timing. */
#include <stdlib.h>
#include <string.h>

#include "nn/cuda/common.cuh"

/* cuBLASLt's workspace: 32 MiB is what its heuristics ask for at most on Hopper. */
static const size_t LT_WORKSPACE = 32u << 20;

extern "C" int tn_cuda_init(tn_cuda **out, int device) {
    *out = NULL;
    tn_cuda *c = (tn_cuda *)calloc(1, sizeof *c);
    if (!c) return tn_fail("out of memory allocating the CUDA context");
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n <= device) {
        free(c);
        return tn_fail("CUDA device %d: %s", device,
                       e != cudaSuccess ? cudaGetErrorString(e) : "no such device (fewer devices present)");
    }
    c->device = device;
    cudaDeviceProp prop;
    if (cudaSetDevice(device) != cudaSuccess || cudaGetDeviceProperties(&prop, device) != cudaSuccess ||
        cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking) != cudaSuccess) {
        free(c);
        return tn_fail("CUDA device %d: %s", device, cudaGetErrorString(cudaGetLastError()));
    }
    snprintf(c->name, sizeof c->name, "%s", prop.name);
    if (cublasLtCreate(&c->lt) != CUBLAS_STATUS_SUCCESS) {
        cudaStreamDestroy(c->stream);
        free(c);
        return tn_fail("cublasLtCreate failed on device %d", device);
    }
    c->workspace_bytes = LT_WORKSPACE;
    if (cudaMalloc(&c->workspace, c->workspace_bytes) != cudaSuccess) {
        cublasLtDestroy(c->lt);
        cudaStreamDestroy(c->stream);
        free(c);
        return tn_fail("cudaMalloc of the %zu-byte cuBLASLt workspace failed", LT_WORKSPACE);
    }
    *out = c;
    return 0;
}

extern "C" void tn_cuda_free(tn_cuda *c) {
    if (!c) return;
    cudaStreamSynchronize(c->stream);
    cudaFree(c->workspace);
    cublasLtDestroy(c->lt);
    cudaStreamDestroy(c->stream);
    free(c);
}

extern "C" const char *tn_cuda_device_name(const tn_cuda *c) { return c->name; }

extern "C" int tn_cuda_mem_info(tn_cuda *c, size_t *free_bytes, size_t *total_bytes) {
    CUDA_TRY(cudaMemGetInfo(free_bytes, total_bytes));
    return 0;
}

extern "C" int tn_cuda_alloc(tn_cuda *c, void **p, size_t bytes, const char *what) {
    *p = NULL;
    cudaError_t e = cudaMalloc(p, bytes ? bytes : 1);
    if (e != cudaSuccess) return tn_fail("cudaMalloc of %zu bytes for %s: %s", bytes, what, cudaGetErrorString(e));
    return 0;
}

extern "C" void tn_cuda_dfree(void *p) { cudaFree(p); }

extern "C" int tn_cuda_upload(tn_cuda *c, void *dst, const void *src, size_t bytes) {
    CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream));
    return 0;
}

extern "C" int tn_cuda_download(tn_cuda *c, void *dst, const void *src, size_t bytes) {
    CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream));
    CUDA_TRY(cudaStreamSynchronize(c->stream));
    return 0;
}

extern "C" int tn_cuda_memset(tn_cuda *c, void *p, int byte, size_t bytes) {
    CUDA_TRY(cudaMemsetAsync(p, byte, bytes, c->stream));
    return 0;
}

extern "C" int tn_cuda_sync(tn_cuda *c) {
    CUDA_TRY(cudaStreamSynchronize(c->stream));
    return 0;
}

/* dst[i] = bf16(src[i]), round to nearest even. */
__global__ void to_bf16_kernel(bf16 *dst, const float *src, int64_t n) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dst[i] = __float2bfloat16_rn(src[i]);
}
/* dst[i] = float(src[i]), exact. */
__global__ void to_f32_kernel(float *dst, const bf16 *src, int64_t n) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dst[i] = __bfloat162float(src[i]);
}

extern "C" int tn_cuda_to_bf16(tn_cuda *c, void *dst, const float *src, int64_t n) {
    if (n <= 0) return 0;
    to_bf16_kernel<<<blocks_for(n, 256), 256, 0, c->stream>>>((bf16 *)dst, src, n);
    LAUNCH_CHECK();
    return 0;
}

extern "C" int tn_cuda_to_f32(tn_cuda *c, float *dst, const void *src, int64_t n) {
    if (n <= 0) return 0;
    to_f32_kernel<<<blocks_for(n, 256), 256, 0, c->stream>>>(dst, (const bf16 *)src, n);
    LAUNCH_CHECK();
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

extern "C" int tn_cuda_time_ms(tn_cuda *c, int (*fn)(void *), void *arg, int iters, int reps, double *ms) {
    if (reps > 64) reps = 64;
    double t[64];
    cudaEvent_t a, b;
    CUDA_TRY(cudaEventCreate(&a));
    CUDA_TRY(cudaEventCreate(&b));
    if (fn(arg)) return -1; /* warm-up: module load, heuristics */
    for (int r = 0; r < reps; r++) {
        CUDA_TRY(cudaEventRecord(a, c->stream));
        for (int i = 0; i < iters; i++)
            if (fn(arg)) return -1;
        CUDA_TRY(cudaEventRecord(b, c->stream));
        CUDA_TRY(cudaEventSynchronize(b));
        float e = 0;
        CUDA_TRY(cudaEventElapsedTime(&e, a, b));
        t[r] = e / iters;
    }
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    qsort(t, (size_t)reps, sizeof t[0], cmp_double);
    *ms = t[reps / 2];
    return 0;
}

/* ---- the step profiler: pairs of events per category, summed at the end ---- */
enum { PROF_MAX = 16384 };
static cudaEvent_t prof_ev[PROF_MAX];
static int prof_cat[PROF_MAX / 2], prof_n, prof_ready, prof_open = -1;

extern "C" int tn_cuda_prof_begin(tn_cuda *c, int cat) {
    if (!prof_ready) {
        for (int i = 0; i < PROF_MAX; i++) CUDA_TRY(cudaEventCreate(&prof_ev[i]));
        prof_ready = 1;
    }
    if (prof_n + 2 > PROF_MAX || prof_open >= 0) return 0; /* full, or nested: not timed */
    prof_open = prof_n;
    prof_cat[prof_n / 2] = cat;
    CUDA_TRY(cudaEventRecord(prof_ev[prof_n], c->stream));
    prof_n++;
    return 0;
}

extern "C" int tn_cuda_prof_end(tn_cuda *c) {
    if (prof_open < 0) return 0;
    CUDA_TRY(cudaEventRecord(prof_ev[prof_n], c->stream));
    prof_n++;
    prof_open = -1;
    return 0;
}

extern "C" int tn_cuda_prof_collect(tn_cuda *c, double *ms, int n_cats) {
    CUDA_TRY(cudaStreamSynchronize(c->stream));
    for (int i = 0; i + 1 < prof_n; i += 2) {
        float e = 0;
        CUDA_TRY(cudaEventElapsedTime(&e, prof_ev[i], prof_ev[i + 1]));
        if (prof_cat[i / 2] < n_cats) ms[prof_cat[i / 2]] += e;
    }
    prof_n = 0;
    prof_open = -1;
    return 0;
}
