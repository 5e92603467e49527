/* rng.h - the seeded generator behind all of tune's randomness (LoRA
 * initialisation, dropout, data order, sampling, `tune init`).
 * xoshiro256** (Blackman and Vigna), seeded through splitmix64, so a stream
 * is a pure function of (seed, stream id): results do not depend on the
 * number of threads. */
#ifndef TUNE_RNG_H
#define TUNE_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} tn_rng;

/* A generator for (seed, stream): distinct streams are independent. */
void tn_rng_seed(tn_rng *r, uint64_t seed, uint64_t stream);
uint64_t tn_rng_next(tn_rng *r);
/* Uniform in [0, 1) with 24 bits (float) or 53 bits (double). */
float tn_rng_uniform(tn_rng *r);
double tn_rng_uniform_double(tn_rng *r);
/* Standard normal (Box-Muller, one value per call). */
float tn_rng_normal(tn_rng *r);
/* 64-bit FNV-1a of a string, to derive a stream id from a name. */
uint64_t tn_hash_string(const char *s);

#endif
