/* llama_quantize.c - llama.cpp's own quantizer (llama_model_quantize, the
 * function behind the llama-quantize tool) from the prebuilt library in
 * node_modules, without its headers: for comparing `tune export --type T`
 * with `tune export --type f32` followed by llama-quantize, tensor by tensor.
 *
 *   cc -o llama_quantize tests/llama/llama_quantize.c -ldl
 *   llama_quantize LIBLLAMA.so IN.gguf OUT.gguf FTYPE [THREADS]
 *
 * FTYPE is llama_ftype's number (2 Q4_0, 7 Q8_0, 15 Q4_K_M, 18 Q6_K).
 * llama_model_quantize_params (llama.h of the pinned llama.cpp, commit
 * 80fb11ac) starts with int32 nthread and the int ftype; the struct is
 * returned by value in memory (larger than 16 bytes), so a larger buffer
 * receives it safely whatever the rest of its fields. */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    unsigned char bytes[512];
} params_buf;

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s LIBLLAMA.so IN.gguf OUT.gguf FTYPE [THREADS]\n", argv[0]);
        return 2;
    }
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL);
    if (!lib) {
        fprintf(stderr, "llama_quantize: %s\n", dlerror());
        return 2;
    }
    void (*backend_init)(void) = (void (*)(void))dlsym(lib, "llama_backend_init");
    params_buf (*defaults)(void) = (params_buf(*)(void))dlsym(lib, "llama_model_quantize_default_params");
    uint32_t (*quantize)(const char *, const char *, const void *) =
        (uint32_t(*)(const char *, const char *, const void *))dlsym(lib, "llama_model_quantize");
    if (!backend_init || !defaults || !quantize) {
        fprintf(stderr, "llama_quantize: %s lacks the llama_model_quantize API\n", argv[1]);
        return 2;
    }
    backend_init();
    params_buf p = defaults();
    int32_t nthread = argc > 5 ? atoi(argv[5]) : 0, ftype = atoi(argv[4]);
    memcpy(p.bytes, &nthread, 4);
    memcpy(p.bytes + 4, &ftype, 4);
    uint32_t rc = quantize(argv[2], argv[3], &p);
    if (rc) fprintf(stderr, "llama_quantize: llama_model_quantize returned %u\n", rc);
    return rc ? 1 : 0;
}
