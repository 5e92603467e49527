/* pool.h - the threads of single-token decoding: a small fixed pool that
 * runs one function on every thread and returns when all are done, for the
 * ~200 short parallel steps of a token (matrix-vector products, attention).
 *
 * Why not OpenMP: tune runs libgomp with OMP_WAIT_POLICY=PASSIVE (see
 * util/platform.h: spinning workers cost up to 10x under load in training),
 * so every parallel region wakes its sleeping workers through the kernel,
 * which in a virtual machine costs ~50 us a region: a third of a token's
 * time. These workers instead wait for the next step by spinning (the CPU's
 * pause) for up to TUNE_POOL_SPIN_US microseconds (default 200: longer than
 * the serial work between two steps of a token) and only then sleep on a
 * condition variable, and the caller, done with its share, spins for half
 * that for the workers before it sleeps too: on a quiet machine a token's
 * steps never sleep. Spinning loses on a busy machine (spinning threads
 * lose the scheduler's favour to other programs, and every step waits for
 * whichever thread was preempted: 2-3x slower than waiting passively), so
 * the pool spins long only while it sees no other program waiting for a
 * CPU (the run queue of /proc/loadavg, looked at every 0.05 s, quiet three
 * times in a row; elsewhere, no worker late by 1 ms in the last 0.5 s), and
 * otherwise spins 5 us and sleeps, about as OpenMP's passive wait does.
 * The thread count is OpenMP's
 * (omp_get_max_threads: OMP_NUM_THREADS). */
#ifndef TUNE_POOL_H
#define TUNE_POOL_H

/* fn(ctx, ith, nth) for ith = 0 .. nth-1, ith 0 on the calling thread;
 * returns when all have returned. Not reentrant: call it from one thread at
 * a time, never from inside fn or an OpenMP region (it then runs fn on the
 * caller alone, nth = 1). */
typedef void (*tn_pool_fn)(void *ctx, int ith, int nth);
void tn_pool_run(tn_pool_fn fn, void *ctx);
/* The number of threads tn_pool_run uses (creates none); 0 when the
 * environment says TUNE_POOL=0: callers then use OpenMP as before. */
int tn_pool_threads(void);

#endif
