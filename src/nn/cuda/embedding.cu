/* embedding.cu - token embedding lookup (nn/cpu/embedding_impl.h is the
 * reference); one thread per output element. */
#include "nn/cuda/common.cuh"

/* y[t, c] = scale·E[ids[t], c] */
template <typename T>
__global__ void embedding_forward_kernel(T *y, const T *e, const int32_t *ids, int Tn, int C, float scale) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (int64_t)Tn * C) return;
    int t = (int)(i / C), c = (int)(i % C);
    stf(y, i, scale * ldf(e, (size_t)ids[t] * C + c));
}

extern "C" int tn_cuda_embedding_forward(tn_cuda *c, void *y, const void *e, const int32_t *ids, tn_dev_dtype dt, int Tn,
                                         int C, float scale) {
    int64_t n = (int64_t)Tn * C;
    if (n <= 0) return 0;
    DISPATCH_DT(dt, embedding_forward_kernel<T><<<blocks_for(n, 256), 256, 0, c->stream>>>((T *)y, (const T *)e, ids,
                                                                                            Tn, C, scale));
    LAUNCH_CHECK();
    return 0;
}
