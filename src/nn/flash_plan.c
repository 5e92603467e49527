/* flash_plan.c - see flash_plan.h. */
#include "nn/flash_plan.h"

/* The backward runs one block per (sequence, kv head, 64 keys) and loops over
 * the group's query heads; the causal (or windowed) key tile kt sees the
 * query tiles kt .. q1. The longest block against the average share of the
 * SMs (two blocks an SM at hd ≤ 128, one at 256) decides the parts: the
 * fewest dividing the group that keep the longest under 2/3 of a share. */
int tn_flash_parts(int B, int S, int nh, int nkv, int hd, int window) {
    const int group = nh / nkv, nt = (S + 63) / 64;
    double work = 0, longest = 0;
    for (int kt = 0; kt < nt; kt++) {
        int q1 = window > 0 ? (kt * 64 + 62 + window) / 64 + 1 : nt;
        int per = (q1 < nt ? q1 : nt) - kt;
        work += per, longest = per > longest ? per : longest;
    }
    work *= (double)B * nh;
    const double share = work / (132.0 * (hd <= 128 ? 2 : 1));
    for (int p = 1; p < group; p++)
        if (group % p == 0 && 3.0 * (group / p) * longest <= 2.0 * share) return p;
    return group;
}

size_t tn_flash_workspace_bytes(int B, int S, int nh, int nkv, int hd) {
    if (B <= 0 || S <= 0 || nh <= 0 || hd <= 0 || nkv <= 0 || nh % nkv) return 0;
    const int parts = tn_flash_parts(B, S, nh, nkv, hd, 0);
    size_t bytes = (size_t)B * S * nh * ((size_t)hd + 1) * sizeof(float);
    if (parts > 1) bytes += 2 * (size_t)parts * B * S * nkv * hd * sizeof(float);
    return bytes;
}
