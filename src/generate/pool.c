/* pool.c - see pool.h. */
#define _GNU_SOURCE
#include "generate/pool.h"

#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#define MAX_THREADS 256

static struct {
    int nth;                 /* threads, the caller included; -1 until first use */
    double spin;             /* seconds a worker spins before sleeping */
    atomic_uint gen;         /* bumped for each step */
    atomic_int done;         /* workers finished with this step */
    atomic_int sleeping;     /* workers asleep on `wake` */
    atomic_int busy;         /* a step is running (reentry runs alone) */
    atomic_int caller_waits; /* the caller is asleep on `fin` */
    double caller_spin;      /* seconds the caller spins for the workers before sleeping */
    tn_pool_fn fn;
    void *ctx;
    pthread_mutex_t lock;
    pthread_cond_t wake, fin;
} P = {.nth = -1, .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER, .fin = PTHREAD_COND_INITIALIZER};

static inline void relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Waits until gen differs from seen: spins (the CPU's pause) for P.spin
 * seconds, then sleeps on `wake`. Returns the new generation. */
static unsigned wait_gen(unsigned seen) {
    double t0 = 0;
    for (unsigned i = 1;; i++) {
        unsigned g = atomic_load_explicit(&P.gen, memory_order_acquire);
        if (g != seen) return g;
        relax();
        if (i % 256) continue;
        if (t0 == 0) t0 = now();
        else if (now() - t0 > P.spin) {
            pthread_mutex_lock(&P.lock);
            atomic_fetch_add(&P.sleeping, 1);
            while ((g = atomic_load(&P.gen)) == seen) pthread_cond_wait(&P.wake, &P.lock);
            atomic_fetch_sub(&P.sleeping, 1);
            pthread_mutex_unlock(&P.lock);
            return g;
        }
    }
}

static void *worker(void *arg) {
    const int ith = (int)(intptr_t)arg;
    unsigned seen = 0;
    for (;;) {
        seen = wait_gen(seen);
        P.fn(P.ctx, ith, P.nth);
        if (atomic_fetch_add(&P.done, 1) + 1 == P.nth - 1 && atomic_load(&P.caller_waits)) {
            pthread_mutex_lock(&P.lock); /* the caller sleeps (or is about to, holding the lock) */
            pthread_cond_signal(&P.fin);
            pthread_mutex_unlock(&P.lock);
        }
    }
    return NULL;
}

static void init(void) {
    const char *e = getenv("TUNE_POOL");
    if (e && e[0] == '0') {
        P.nth = 0;
        return;
    }
    const char *s = getenv("TUNE_POOL_SPIN_US");
    P.spin = (s ? atof(s) : 200.0) * 1e-6;
    P.caller_spin = P.spin / 2;
    int n = omp_get_max_threads();
    if (n > MAX_THREADS) n = MAX_THREADS;
    P.nth = 1;
    for (int i = 1; i < n; i++) {
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&t, &a, worker, (void *)(intptr_t)i);
        pthread_attr_destroy(&a);
        if (rc != 0) break;
        P.nth++;
    }
}

int tn_pool_threads(void) {
    if (P.nth < 0) {
        const char *e = getenv("TUNE_POOL");
        if (e && e[0] == '0') return 0;
        return omp_get_max_threads();
    }
    return P.nth;
}

void tn_pool_run(tn_pool_fn fn, void *ctx) {
    if (P.nth < 0) init();
    int expected = 0;
    if (P.nth <= 1 || omp_in_parallel() || !atomic_compare_exchange_strong(&P.busy, &expected, 1)) {
        fn(ctx, 0, 1);
        return;
    }
    P.fn = fn, P.ctx = ctx;
    atomic_store_explicit(&P.done, 0, memory_order_relaxed);
    atomic_fetch_add(&P.gen, 1); /* seq_cst: ordered before the load of sleeping */
    if (atomic_load(&P.sleeping) > 0) {
        pthread_mutex_lock(&P.lock);
        pthread_cond_broadcast(&P.wake);
        pthread_mutex_unlock(&P.lock);
    }
    fn(ctx, 0, P.nth);
    double t0 = 0;
    for (unsigned i = 1; atomic_load_explicit(&P.done, memory_order_acquire) < P.nth - 1; i++) {
        relax();
        if (i % 256) continue;
        if (t0 == 0) t0 = now();
        else if (now() - t0 > P.caller_spin) { /* a worker is late (descheduled?): give the CPU up */
            pthread_mutex_lock(&P.lock);
            atomic_store(&P.caller_waits, 1);
            while (atomic_load(&P.done) < P.nth - 1) pthread_cond_wait(&P.fin, &P.lock);
            atomic_store(&P.caller_waits, 0);
            pthread_mutex_unlock(&P.lock);
            break;
        }
    }
    atomic_store(&P.busy, 0);
}
