/* pool.c - see pool.h. */
#define _GNU_SOURCE
#include "generate/pool.h"
#include "util/platform.h"

#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__)
#endif

#define MAX_THREADS 256
#define LATE 1e-3      /* a worker this late was off its CPU: the machine is busy */
#define SHORT 5e-6     /* the spin while the machine is busy */
#define RETRY 0.5      /* seconds of short spins before trying long ones again */
#define PROBE 0.05     /* seconds between looks at the run queue */

static struct {
    int nth;                 /* threads, the caller included; -1 until first use */
    double spin;             /* seconds a worker spins before sleeping */
    atomic_uint gen;         /* bumped for each step */
    atomic_int done;         /* workers finished with this step */
    atomic_int sleeping;     /* workers asleep on `wake` */
    atomic_int busy;         /* a step is running (reentry runs alone) */
    atomic_int caller_waits; /* the caller is asleep on `fin` */
    double caller_spin;      /* seconds the caller spins for the workers before sleeping */
    atomic_int calm;         /* 0 after a step found a worker late by over LATE s: spin SHORT s only */
    double retry_at;         /* when to try spinning again (the caller's clock) */
    double next_probe;       /* when to look at the run queue again */
    int quiet_probes;        /* looks in a row that found no other runnable thread */
    int ncpu;
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
        else if (now() - t0 > (atomic_load_explicit(&P.calm, memory_order_relaxed) ? P.spin : SHORT)) {
            pthread_mutex_lock(&P.lock);
            atomic_fetch_add(&P.sleeping, 1);
            while ((g = atomic_load(&P.gen)) == seen) pthread_cond_wait(&P.wake, &P.lock);
            atomic_fetch_sub(&P.sleeping, 1);
            pthread_mutex_unlock(&P.lock);
            return g;
        }
    }
}

/* Threads of other programs waiting for a CPU now beyond those this pool
 * leaves free (Linux: the run queue count of /proc/loadavg, less this
 * pool's awake threads); -1 where unknown. */
static int others_runnable(void) {
    int running = tn_runnable_threads();
    if (running < 0) return -1;
    const int mine = P.nth - atomic_load(&P.sleeping);
    const int o = running - mine - (P.ncpu > P.nth ? P.ncpu - P.nth : 0);
    return o > 0 ? o : 0;
}

static void *worker(void *arg) {
    const int ith = (int)(intptr_t)arg;
    unsigned seen = 0;
    for (;;) {
        seen = wait_gen(seen);
        P.fn(P.ctx, ith, P.nth);
        if (atomic_fetch_add(&P.done, 1) + 1 == P.nth - 1 && atomic_load(&P.caller_waits)) {
            pthread_mutex_lock(&P.lock); /* the caller is asleep once the lock is free (or saw done) */
            pthread_mutex_unlock(&P.lock);
            pthread_cond_signal(&P.fin); /* outside the lock: the caller wakes to a free mutex */
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
    long nc = sysconf(_SC_NPROCESSORS_ONLN);
    P.ncpu = nc > 0 ? (int)nc : 1;
    atomic_store(&P.calm, 1);
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
        pthread_mutex_lock(&P.lock); /* sleepers are in cond_wait once the lock is free */
        pthread_mutex_unlock(&P.lock);
        pthread_cond_broadcast(&P.wake);
    }
    fn(ctx, 0, P.nth);
    double t0 = 0;
    int calm = atomic_load_explicit(&P.calm, memory_order_relaxed), late = 0;
    for (unsigned i = 1; atomic_load_explicit(&P.done, memory_order_acquire) < P.nth - 1; i++) {
        relax();
        if (i % 256) continue;
        if (t0 == 0) t0 = now();
        else if (now() - t0 > (calm ? P.caller_spin : SHORT)) { /* a worker is late (descheduled?): give the CPU up */
            pthread_mutex_lock(&P.lock);
            atomic_store(&P.caller_waits, 1);
            while (atomic_load(&P.done) < P.nth - 1) pthread_cond_wait(&P.fin, &P.lock);
            atomic_store(&P.caller_waits, 0);
            pthread_mutex_unlock(&P.lock);
            late = now() - t0 > LATE;
            break;
        }
    }
    /* Spinning only pays while every thread has a CPU of its own: when
     * other programs want the CPUs, spinning threads lose the scheduler's
     * favour to them and each step waits for the thread they preempted
     * (2-3x slower than waiting passively). So: spin long only while a look
     * at the run queue every PROBE s has found no one else waiting 3 times
     * in a row; where the run queue cannot be read, not for RETRY s after a
     * worker came LATE (on Linux a late worker only brings the next look
     * forward: page faults of a first token make workers late too). */
    const double t = now();
    if (late) P.next_probe = 0;
    if (t >= P.next_probe) {
        P.next_probe = t + PROBE;
        const int o = others_runnable();
        if (o > 0 || (o < 0 && late)) {
            atomic_store_explicit(&P.calm, 0, memory_order_relaxed);
            P.quiet_probes = 0, P.retry_at = t + RETRY;
        } else if (!calm && (o < 0 ? t > P.retry_at : ++P.quiet_probes >= 3))
            atomic_store_explicit(&P.calm, 1, memory_order_relaxed);
    }
    atomic_store(&P.busy, 0);
}
