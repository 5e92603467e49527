/* trainer.c - the training loop (see trainer.h). */
#define _POSIX_C_SOURCE 200809L
#include "train/trainer.h"

#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/json.h"
#include "io/safetensors_write.h"
#include "train/adapter.h"
#include "train/gpu.h"
#include "train/loss_plot.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/platform.h"
#include "util/progress.h"
#include "util/rng.h"
#include "util/size.h"

void tn_train_defaults(tn_train_options *o) {
    memset(o, 0, sizeof *o);
    o->rank = 8;
    o->alpha = 16;
    o->layers = -1;
    o->lr = 1e-5;
    o->schedule = TN_SCHEDULE_CONSTANT;
    o->batch = 4;
    o->grad_accum = 1;
    o->iters = 1000;
    o->max_seq = 2048;
    o->val_every = 200;
    o->val_batches = 25;
    o->save_every = 100;
    o->report_every = 10;
    o->max_bad_steps = 5;
    o->checkpoint_layers = -2;
}

/* Mean loss over up to max_batches batches of a split, on the device. */
static int evaluate_gpu(tn_gpu *g, tn_batch_source *src, int split, int64_t max_batches, double *loss) {
    int64_t n = src->n_batches(src->ctx, split);
    if (max_batches > 0 && max_batches < n) n = max_batches;
    double sum = 0;
    int64_t count = 0;
    for (int64_t i = 0; i < n; i++) {
        tn_batch_view b;
        if (src->get(src->ctx, split, 0, i, &b) != 0) return -1;
        int64_t c = 0;
        double l = tn_gpu_step(g, b.ids, b.labels, b.B, b.S, 0, 0, &c);
        if (isnan(l) && c) return -1;
        sum += l;
        count += c;
    }
    *loss = count ? sum / (double)count : NAN;
    return 0;
}

int tn_evaluate(tn_model *m, tn_lora *lora, tn_activations *a, tn_batch_source *src, int split, int64_t max_batches, double *loss,
                int64_t *tokens) {
    int64_t n = src->n_batches(src->ctx, split);
    if (max_batches > 0 && max_batches < n) n = max_batches;
    double sum = 0;
    int64_t count = 0;
    int was_training = lora ? lora->training : 0;
    if (lora) lora->training = 0;
    for (int64_t i = 0; i < n; i++) {
        tn_batch_view b;
        if (src->get(src->ctx, split, 0, i, &b) != 0 || tn_activations_shape(a, b.B, b.S) != 0) {
            if (lora) lora->training = was_training;
            return -1;
        }
        int64_t c = 0;
        sum += tn_model_step(m, lora, a, b.ids, b.labels, 0, 0, &c);
        count += c;
    }
    if (lora) lora->training = was_training;
    *loss = count ? sum / (double)count : NAN;
    if (tokens) *tokens = count;
    return 0;
}

/* ---- checkpoints -------------------------------------------------------- */

typedef struct {
    const float *m, *v;
} opt_ctx;

static int fill_opt(void *ctx, int i, void *buf, uint64_t n) {
    opt_ctx *c = ctx;
    memcpy(buf, i ? c->v : c->m, n);
    return 0;
}


/* checkpoints/NNNNNNN/: the adapter, the optimizer moments and the loop's
 * state, written under a temporary name and renamed whole. */
static int save_checkpoint(const tn_train_options *o, const tn_model *m, const tn_lora *lora, const tn_adamw *opt, int64_t step,
                           int64_t micro, int bad_steps, char *dir_out, size_t cap) {
    char dir[4200], tmp[4300], path[4400];
    snprintf(dir, sizeof dir, "%s/checkpoints/%07lld", o->out, (long long)step);
    snprintf(tmp, sizeof tmp, "%s.tmp", dir);
    tn_remove_tree(tmp);
    if (lora ? tn_adapter_save(lora, m, tmp, o->model) != 0 : tn_model_save(m, tmp, TN_DTYPE_F32) != 0) return -1;
    tn_tensor_desc d[2] = {{"exp_avg", TN_DTYPE_F32, 1, {opt->n}}, {"exp_avg_sq", TN_DTYPE_F32, 1, {opt->n}}};
    opt_ctx oc = {opt->m, opt->v};
    if (tn_safetensors_write(tmp, "optimizer", d, 2, UINT64_MAX, NULL, fill_opt, &oc) != 0) return -1;
    cJSON *st = cJSON_CreateObject();
    cJSON_AddNumberToObject(st, "step", (double)step);
    cJSON_AddNumberToObject(st, "micro_batches", (double)micro);
    cJSON_AddNumberToObject(st, "bad_steps", bad_steps);
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
    cJSON_AddStringToObject(st, "seed", seed);
    cJSON_AddNumberToObject(st, "batch", o->batch);
    cJSON_AddNumberToObject(st, "grad_accum", o->grad_accum);
    cJSON_AddNumberToObject(st, "lr", o->lr);
    cJSON_AddStringToObject(st, "schedule", tn_schedule_name(o->schedule));
    if (o->data_time && *o->data_time) cJSON_AddStringToObject(st, "data_time", o->data_time);
    char *text = cJSON_Print(st);
    cJSON_Delete(st);
    snprintf(path, sizeof path, "%s/state.json", tmp);
    int rc = text ? tn_write_file_atomic(path, text, strlen(text)) : tn_fail("out of memory");
    free(text);
    if (rc) return rc;
    tn_remove_tree(dir);
    if (rename(tmp, dir) != 0) return tn_fail("%s: cannot rename checkpoint into place (%s)", dir, strerror(errno));
    if (dir_out) snprintf(dir_out, cap, "%s", dir);
    return 0;
}

/* The loop's state and the AdamW moments of a checkpoint into opt (already
 * sized for the trained parameters). The seed must be this run's: the data
 * order is a function of it. */
static int load_state_and_moments(const char *dir, tn_adamw *opt, const tn_train_options *o, int64_t *step, int64_t *micro,
                                  int *bad_steps) {
    char path[4200];
    snprintf(path, sizeof path, "%s/state.json", dir);
    cJSON *st = tn_json_parse_file(path, 1 << 20);
    if (!st) return -1;
    int64_t s, mb, bad = 0;
    int rc = tn_json_int(st, "step", path, &s) || tn_json_int(st, "micro_batches", path, &mb) || tn_json_opt_int(st, "bad_steps", path, &bad) < 0;
    const char *seed = rc ? NULL : tn_json_str(st, "seed", path);
    if (seed && strtoull(seed, NULL, 10) != o->seed)
        rc = tn_fail("%s: the checkpoint was trained with --seed %s, this run has --seed %llu (the data order would differ)", path, seed,
                     (unsigned long long)o->seed);
    cJSON_Delete(st);
    if (rc || !seed) return -1;
    snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
    tn_safetensors os;
    if (tn_safetensors_open(path, &os) != 0) return -1;
    const tn_tensor_info *tm = tn_safetensors_find(&os, "exp_avg"), *tv = tn_safetensors_find(&os, "exp_avg_sq");
    if (!tm || !tv || tm->n_elements != (uint64_t)opt->n || tv->n_elements != (uint64_t)opt->n || tm->dtype != TN_DTYPE_F32 ||
        tv->dtype != TN_DTYPE_F32) {
        tn_safetensors_close(&os);
        return tn_fail("%s: expected F32 exp_avg and exp_avg_sq of %lld elements", path, (long long)opt->n);
    }
    memcpy(opt->m, tn_safetensors_data(&os, tm), tm->n_bytes);
    memcpy(opt->v, tn_safetensors_data(&os, tv), tv->n_bytes);
    tn_safetensors_close(&os);
    opt->step = s;
    *step = s, *micro = mb, *bad_steps = (int)bad;
    return 0;
}

/* A LoRA checkpoint: the adapter, then the state and moments. */
static int load_checkpoint(const char *dir, const tn_model *m, tn_lora *lora, tn_adamw *opt, const tn_train_options *o, int64_t *step,
                           int64_t *micro, int *bad_steps) {
    if (tn_adapter_load(lora, m, dir) != 0) return -1;
    if (tn_adamw_init(opt, lora->n_params, o->lr, o->weight_decay) != 0) return -1;
    return load_state_and_moments(dir, opt, o, step, micro, bad_steps);
}

/* A full fine-tuning checkpoint: fp32 weights (model.safetensors), then the
 * state and moments. */
static int load_full_checkpoint(const char *dir, tn_model *m, tn_adamw *opt, const tn_train_options *o, int64_t *step, int64_t *micro,
                                int *bad_steps) {
    char path[4200];
    tn_safetensors ws;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (tn_safetensors_open(path, &ws) != 0) return -1;
    for (int i = 0; i < m->st.n_tensors; i++) {
        const tn_tensor_info *t = tn_safetensors_find(&ws, m->st.tensors[i].name);
        if (!t || t->dtype != TN_DTYPE_F32 || t->n_elements != m->st.tensors[i].n_elements) {
            tn_safetensors_close(&ws);
            return tn_fail("%s: tensor %s missing or not the F32 tensor of this model", path, m->st.tensors[i].name);
        }
        memcpy(m->master + m->master_off[i], tn_safetensors_data(&ws, t), t->n_bytes);
    }
    tn_safetensors_close(&ws);
    return load_state_and_moments(dir, opt, o, step, micro, bad_steps);
}

/* ---- the loop ------------------------------------------------------------ */

typedef struct {
    int64_t *steps;
    double *loss;
    int n, cap;
} series;

static void series_add(series *s, int64_t step, double v) {
    if (s->n == s->cap) {
        int nc = s->cap ? s->cap * 2 : 256;
        int64_t *a = realloc(s->steps, (size_t)nc * sizeof *a);
        double *b = realloc(s->loss, (size_t)nc * sizeof *b);
        if (!a || !b) {
            free(a ? a : NULL);
            return;
        }
        s->steps = a, s->loss = b, s->cap = nc;
    }
    s->steps[s->n] = step, s->loss[s->n] = v, s->n++;
}

static int log_line(FILE *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int log_line(FILE *f, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
    return fflush(f);
}

int tn_train_run(const tn_train_options *o, tn_batch_source *src) {
    int64_t nb_train = src->n_batches(src->ctx, TN_SPLIT_TRAIN);
    if (nb_train <= 0) return tn_fail("%s: no training batches", o->model);
    int64_t iters = o->iters;
    if (o->epochs > 0) iters = ((int64_t)o->epochs * nb_train + o->grad_accum - 1) / o->grad_accum;
    int max_seq = src->max_seq < o->max_seq ? src->max_seq : o->max_seq;
    if (max_seq < 2) max_seq = 2;

    /* The plan, priced before any weight is touched. */
    tn_spec spec;
    if (tn_spec_load(o->model, &spec) != 0) return -1;
    tn_plan_settings ps = {.seq = max_seq, .batch = src->max_batch, .rank = o->rank, .layers = o->layers,
                           .grad_checkpoint = o->grad_checkpoint, .dropout = o->dropout};
    if (tn_targets_parse(&spec, o->targets, &ps.targets) != 0) return -1;
    tn_plan plan;
    tn_model m;
    /* stored dtype: from the checkpoint headers, as check does */
    if (tn_model_open(o->model, max_seq, &m) != 0) return -1;
    tn_dtype stored = tn_spec_stored_dtype(&spec, &m.st);
    if (o->qlora) ps.qlora = (tn_quant)o->qlora;
    tn_plan_make(&spec, stored, &ps, o->full ? TN_PLAN_FULL : o->qlora ? TN_PLAN_QLORA : TN_PLAN_LORA, &plan);
    char g1[32], g2[32], g3[32];
    if (o->budget && plan.total > o->budget) {
        tn_model_close(&m);
        return tn_fail("the plan needs %s, over the budget of %s (see `tune check %s --max-seq-length %d --batch %d%s --budget ...` for the "
                       "settings that fit: --grad-checkpoint, a smaller --batch or --max-seq-length, --qlora)",
                       tn_format_gib(plan.total, g1, sizeof g1), tn_format_gib(o->budget, g2, sizeof g2), o->model, max_seq, src->max_batch,
                       o->grad_checkpoint ? " --grad-checkpoint" : "");
    }

    tn_lora lora;
    tn_adamw opt;
    memset(&opt, 0, sizeof opt);
    int64_t step = 0, micro = 0;
    int bad_steps = 0, rc = -1;
    memset(&lora, 0, sizeof lora);
    if (o->qlora && o->full) {
        tn_model_close(&m);
        return tn_fail("--qlora trains LoRA on a quantized base; it does not combine with --fine-tune-type full");
    }
    if (o->qlora && tn_model_quantize_base(&m, o->qlora) != 0) {
        tn_model_close(&m);
        return -1;
    }
    if (o->full) {
        if (o->init_adapter) {
            tn_model_close(&m);
            return tn_fail("--init-adapter applies to LoRA training, not --fine-tune-type full");
        }
        if (tn_model_make_trainable(&m, o->layers) != 0 || tn_adamw_init(&opt, m.n_master, o->lr, o->weight_decay) != 0) {
            tn_model_close(&m);
            return -1;
        }
        if (o->resume && load_full_checkpoint(o->resume, &m, &opt, o, &step, &micro, &bad_steps) != 0) {
            tn_model_close(&m);
            return tn_fail_prefix("--resume %s", o->resume);
        }
    } else if (o->resume) {
        if (load_checkpoint(o->resume, &m, &lora, &opt, o, &step, &micro, &bad_steps) != 0) {
            tn_model_close(&m);
            return tn_fail_prefix("--resume %s", o->resume);
        }
    } else if (o->init_adapter) {
        if (tn_adapter_load(&lora, &m, o->init_adapter) != 0 || tn_adamw_init(&opt, lora.n_params, o->lr, o->weight_decay) != 0) {
            tn_model_close(&m);
            return tn_fail_prefix("--init-adapter %s", o->init_adapter);
        }
    } else {
        if (tn_lora_init(&lora, &m, &ps.targets, o->rank, o->alpha, o->rslora, o->dropout, o->layers, o->seed) != 0 ||
            tn_adamw_init(&opt, lora.n_params, o->lr, o->weight_decay) != 0) {
            tn_model_close(&m);
            return -1;
        }
    }
    tn_activations a;
    memset(&a, 0, sizeof a);
    tn_gpu *gpu = NULL;
    if (o->cuda) {
        if (!tn_gpu_available()) {
            tn_fail("--device cuda: this build has no CUDA backend (build with `make CUDA=1` on a machine with nvcc)");
            goto out_lora;
        }
        if (o->full || o->qlora) {
            tn_fail("--device cuda trains LoRA on a 16-bit base for now; %s runs on the CPU", o->full ? "full fine-tuning" : "QLoRA");
            goto out_lora;
        }
        tn_gpu_options go = {.max_batch = src->max_batch, .max_seq = max_seq,
                             .checkpoint_layers = o->grad_checkpoint ? -1 : o->checkpoint_layers};
        if (tn_gpu_open(&gpu, &m, &lora, &go) != 0 || tn_gpu_upload(gpu, &lora, &opt) != 0) goto out_acts;
        fprintf(stderr, "tune train: on %s; %d of %d layers checkpointed; device plan %s\n", tn_gpu_name(gpu), tn_gpu_checkpointed(gpu),
                (int)spec.n_layers, tn_format_gib(tn_gpu_planned(gpu), g1, sizeof g1));
    } else {
        tn_plan_settings as = {.seq = max_seq, .batch = src->max_batch, .grad_checkpoint = o->grad_checkpoint};
        if (tn_activations_alloc(&a, &m, o->full ? NULL : &lora, &as) != 0) goto out_lora;
    }
    /* What the optimizer updates: the LoRA matrices, or every weight. */
    float *params = o->full ? m.master : lora.params, *grads = o->full ? m.master_grad : lora.grads;
    int64_t n_params = o->full ? m.n_master : lora.n_params;
    tn_lora *lp = o->full ? NULL : &lora;
    if (tn_make_dirs(o->out) != 0) goto out_acts;
    char path[4200];
    snprintf(path, sizeof path, "%s/log.jsonl", o->out);
    FILE *log = fopen(path, o->resume ? "a" : "w");
    if (!log) {
        tn_fail("%s: cannot write (%s)", path, strerror(errno));
        goto out_acts;
    }
    tn_schedule sched = {o->schedule, o->lr, o->warmup, iters, o->min_lr};
    series tr = {0}, va = {0};
    if (o->full)
        fprintf(stderr, "tune train: %s, %s full fine-tuning of %s layers, %lld parameters", o->model, spec.model_type,
                m.first_trained ? "the last" : "all", (long long)n_params);
    else
        fprintf(stderr, "tune train: %s, %s %s rank %d (alpha %g) on %d modules, %lld parameters", o->model, spec.model_type,
                o->qlora ? (o->qlora == TN_QUANT_NF4 ? "QLoRA (nf4 base)" : o->qlora == TN_QUANT_Q4_K ? "QLoRA (q4_k base)" : "QLoRA (q8_0 base)") : "LoRA",
                lora.rank, lora.alpha, lora.n, (long long)n_params);
    fprintf(stderr, "; %lld steps of %d x %d batches (x%d accumulation); plan %s\n", (long long)iters, src->max_batch, max_seq, o->grad_accum,
            tn_format_gib(plan.total, g1, sizeof g1));
    tn_progress bar;
    tn_progress_start(&bar, "train", iters);
    double t0 = tn_seconds(), tokens_total = 0;
    lora.training = 1;
    while (step < iters) {
        if (gpu ? tn_gpu_zero_grads(gpu) != 0 : (memset(grads, 0, (size_t)n_params * sizeof *grads), 0)) goto out_log;
        double loss_sum = 0;
        int64_t counted = 0, tokens = 0;
        double ts = tn_seconds();
        for (int k = 0; k < o->grad_accum; k++, micro++) {
            tn_batch_view b;
            int64_t epoch = micro / nb_train, index = micro % nb_train;
            if (src->get(src->ctx, TN_SPLIT_TRAIN, epoch, index, &b) != 0 || (!gpu && tn_activations_shape(&a, b.B, b.S) != 0)) goto out_log;
            lora.dropout_key = tn_hash_string("dropout") ^ (o->seed * 0x9e3779b97f4a7c15ull) ^ (uint64_t)micro * 0xbf58476d1ce4e5b9ull;
            int64_t c = 0;
            /* Gradients are summed (scale 1) and divided by the tokens of
             * all micro-batches, so accumulation equals one large batch. */
            loss_sum += gpu ? tn_gpu_step(gpu, b.ids, b.labels, b.B, b.S, 1, 1.0, &c) : tn_model_step(&m, lp, &a, b.ids, b.labels, 1, 1.0, &c);
            counted += c;
            tokens += (int64_t)b.B * b.S;
        }
        double loss = counted ? loss_sum / (double)counted : NAN;
        double norm;
        if (gpu) {
            if (tn_gpu_grads_finish(gpu, counted ? 1.0 / (double)counted : 1.0, o->clip, &norm) != 0) goto out_log;
        } else {
            if (counted)
                for (int64_t i = 0; i < n_params; i++) grads[i] /= (float)counted;
            norm = tn_clip_grad_norm(grads, n_params, o->clip);
        }
        double lr = tn_schedule_lr(&sched, step);
        if (!isfinite(loss) || !isfinite(norm)) {
            bad_steps++;
            fprintf(stderr, "\ntune train: step %lld skipped: %s is not finite (%d of at most %d such steps)\n", (long long)step + 1,
                    isfinite(loss) ? "the gradient norm" : "the loss", bad_steps, o->max_bad_steps);
            if (bad_steps >= o->max_bad_steps) {
                tn_fail("stopped after %d steps whose loss or gradients were not finite (lower --lr, or set --clip)", bad_steps);
                goto out_log;
            }
            step++;
            continue;
        }
        if (gpu) {
            if (tn_gpu_adamw(gpu, &opt, lr) != 0) goto out_log;
        } else {
            tn_adamw_update(&opt, params, grads, lr);
        }
        step++;
        double now = tn_seconds();
        tokens_total += (double)tokens;
        series_add(&tr, step, loss);
        log_line(log, "{\"step\": %lld, \"train_loss\": %.6f, \"lr\": %.6g, \"tokens\": %lld, \"trained_tokens\": %lld, \"seconds\": %.3f, "
                      "\"grad_norm\": %.6g, \"peak_bytes\": %llu}",
                 (long long)step, loss, lr, (long long)tokens, (long long)counted, now - ts, norm, (unsigned long long)tn_peak_rss());
        char extra[200];
        uint64_t dev_used = 0, dev_total = 0;
        if (gpu) tn_gpu_used(gpu, &dev_used, &dev_total);
        snprintf(extra, sizeof extra, "loss %.4f lr %.2e peak %s", loss, lr, tn_format_gib(gpu ? dev_used : tn_peak_rss(), g1, sizeof g1));
        tn_progress_update(&bar, step, "tok/s", tokens_total / (now - t0), extra);
        if (o->val_every > 0 && (step % o->val_every == 0 || step == iters) && src->n_batches(src->ctx, TN_SPLIT_VALID) > 0) {
            double vl;
            if (gpu ? evaluate_gpu(gpu, src, TN_SPLIT_VALID, o->val_batches, &vl) != 0
                    : tn_evaluate(&m, lp, &a, src, TN_SPLIT_VALID, o->val_batches, &vl, NULL) != 0)
                goto out_log;
            series_add(&va, step, vl);
            log_line(log, "{\"step\": %lld, \"val_loss\": %.6f}", (long long)step, vl);
            if (!bar.tty) fprintf(stderr, "step %lld: validation loss %.4f\n", (long long)step, vl);
        }
        if ((o->save_every > 0 && step % o->save_every == 0) || step == iters) {
            if (gpu && tn_gpu_download(gpu, &lora, &opt) != 0) goto out_log;
            if (save_checkpoint(o, &m, lp, &opt, step, micro, bad_steps, NULL, 0) != 0) goto out_log;
            if (o->full ? tn_model_save(&m, o->out, stored) != 0 : tn_adapter_save(&lora, &m, o->out, o->model) != 0) goto out_log;
        }
    }
    tn_progress_finish(&bar);
    snprintf(path, sizeof path, "%s/loss.svg", o->out);
    if (tn_loss_plot_svg(path, tr.steps, tr.loss, tr.n, va.steps, va.loss, va.n, "tune train: loss") != 0) goto out_log;
    fprintf(stderr, "tune train: done, %lld steps in %.1f s; %s in %s/, with log.jsonl, loss.svg and checkpoints/\n", (long long)step,
            tn_seconds() - t0, o->full ? "the model (config.json, model.safetensors)" : "the adapter (adapter_model.safetensors, adapter_config.json)",
            o->out);
    fprintf(stderr, "tune train: peak memory: predicted %s (plan), measured %s (rss)\n", tn_format_gib(plan.total, g1, sizeof g1),
            tn_format_gib(tn_peak_rss(), g2, sizeof g2));
    if (gpu) {
        uint64_t used = 0, total = 0;
        tn_gpu_used(gpu, &used, &total);
        fprintf(stderr, "tune train: device memory: planned %s (allocations), in use %s of %s (whole device, CUDA context included)\n",
                tn_format_gib(tn_gpu_planned(gpu), g1, sizeof g1), tn_format_gib(used, g2, sizeof g2), tn_format_gib(total, g3, sizeof g3));
    }
    rc = 0;
out_log:
    fclose(log);
    free(tr.steps), free(tr.loss), free(va.steps), free(va.loss);
out_acts:
    tn_activations_free(&a);
    if (gpu) tn_gpu_close(gpu);
out_lora:
    tn_adamw_free(&opt);
    tn_lora_free(&lora);
    tn_model_close(&m);
    return rc;
}
