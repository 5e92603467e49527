/* job.h - what the export jobs share (internal to src/export): the source
 * checkpoint, the adapter, and one tensor's journey from its stored form
 * to fp32 in llama.cpp's layout (read, LoRA merged, rows permuted, +1). */
#ifndef TUNE_EXPORT_JOB_H
#define TUNE_EXPORT_JOB_H

#include <stdint.h>

#include "export/export.h"
#include "io/gguf_write.h"
#include "io/safetensors.h"
#include "io/safetensors_write.h"
#include "model/spec.h"
#include "train/model.h"
#include "util/progress.h"

#define TN_EXPORT_NAME 256

/* One output tensor. */
typedef struct {
    char src[TN_EXPORT_NAME];  /* HF name ("" for a generated tensor) */
    char name[TN_EXPORT_NAME]; /* output name (GGUF or HF) */
    int n_dims;
    int64_t shape[4];          /* logical HF shape, outermost first */
    int out_dims;              /* the output's shape (GGUF: after the transform) */
    int64_t out_shape[4];
    tn_gguf_transform transform;
    int lora;                  /* index into lora.mods, or -1 */
    int lora_part;             /* adapter GGUF: 0 = A, 1 = B */
    tn_ggml_type type;         /* GGUF */
    tn_ggml_type wanted;       /* before a fallback (GGUF) */
    tn_dtype dtype;            /* fuse */
} tn_export_tensor;

typedef enum { TN_JOB_GGUF, TN_JOB_GGUF_ADAPTER, TN_JOB_FUSE } tn_job_kind;

struct tn_export_job {
    tn_job_kind kind;
    char model_dir[4096], out[4096];
    tn_spec spec;
    tn_safetensors st;
    int st_open;
    tn_model shell; /* the spec alone (no weights): what tn_adapter_load needs */
    tn_lora lora;
    int have_lora;
    tn_file_type ftype;
    tn_gguf_writer *w;
    int n;
    tn_export_tensor *t;
    float *work, *scratch; /* [largest tensor] fp32 each */
    int64_t work_elems;
    float rope_freqs[512];
    /* fuse */
    tn_dtype dtype;
    uint64_t shard_bytes;
    tn_tensor_desc *desc;
    char tmp_dir[4200];
    char dequant_dir[4096]; /* GGUF: also the weights as the file holds them, as an HF folder */
    double t0;
    uint64_t bytes_in, bytes_out;
    tn_progress progress;
};

/* Opens model_dir's config and safetensors, checks the tensor table and
 * that the family implements `stage`; opens the adapter when given. */
int tn_job_open_model(tn_export_job *j, const char *model_dir, const char *adapter_dir, tn_stage stage);
/* Appends an output tensor (grows j->t); returns it. */
tn_export_tensor *tn_job_add(tn_export_job *j);
/* The LoRA module index of HF tensor `name`, or -1. */
int tn_job_lora_of(const tn_export_job *j, const char *name);
/* Allocates the fp32 work buffers for the largest tensor. */
int tn_job_alloc_work(tn_export_job *j);
/* Tensor i in fp32 in j->work, LoRA merged and (when `transform`) moved to
 * llama.cpp's layout; returns the values (j->work or j->scratch). */
float *tn_job_load(tn_export_job *j, const tn_export_tensor *t, int transform);
/* 1: dir absent; 0: a folder an HF-folder writer may replace (holding only
 * files such a writer writes); -1 (with a message) otherwise. */
int tn_check_out_dir(const char *dir);
/* Writes an HF folder at out_dir (as "<out_dir>.tmp.<pid>", renamed when
 * complete): the n tensors (fill), config.json (torch_dtype set to
 * config_dtype unless TN_DTYPE_COUNT, "quantization" dropped) and the
 * tokenizer and generation files of the model folder. */
int tn_job_write_hf(tn_export_job *j, const char *out_dir, const tn_tensor_desc *desc, int n, tn_tensor_fill fill,
                    tn_dtype config_dtype);
/* The writers of each kind (gguf_model.c, gguf_adapter.c, fuse.c). */
int tn_gguf_export_write(tn_export_job *j);
int tn_gguf_adapter_write(tn_export_job *j);
int tn_fuse_write(tn_export_job *j);
/* The output shape of a tensor of shape t->shape under t->transform
 * (sets t->out_dims, t->out_shape); fails naming the tensor when the shape
 * does not allow the transform. */
int tn_job_out_shape(const tn_export_job *j, tn_export_tensor *t);
/* Rows of a [rows, cols] matrix from rotate-half to interleaved pairs per
 * head (convert_hf_to_gguf.py's LlamaModel.permute), out of place. */
void tn_permute_rows(const float *src, float *dst, int64_t rows, int64_t cols, int64_t heads);

#endif
