#include "util/size.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "util/error.h"

int tn_parse_size(const char *text, const char *what, uint64_t *bytes) {
    char *end = NULL;
    double v = strtod(text, &end);
    if (end == text || !(v >= 0) || !isfinite(v))
        return tn_fail("%s: expected a size such as 16G, 512M or 1.5G, got '%s'", what, text);
    double mult = 1;
    switch (toupper((unsigned char)*end)) {
    case 0: break;
    case 'K': mult = 1024.0; end++; break;
    case 'M': mult = 1024.0 * 1024; end++; break;
    case 'G': mult = 1024.0 * 1024 * 1024; end++; break;
    case 'T': mult = 1024.0 * 1024 * 1024 * 1024; end++; break;
    default: return tn_fail("%s: unknown size unit in '%s' (expected K, M, G or T)", what, text);
    }
    if (*end == 'i' || *end == 'I') end++;
    if (*end == 'b' || *end == 'B') end++;
    if (*end) return tn_fail("%s: trailing characters in size '%s'", what, text);
    *bytes = (uint64_t)llround(v * mult);
    return 0;
}

const char *tn_format_gib(uint64_t bytes, char *buf, int cap) {
    snprintf(buf, (size_t)cap, "%.2f GiB", (double)bytes / (1024.0 * 1024 * 1024));
    return buf;
}

const char *tn_format_count(uint64_t n, char *buf, int cap) {
    if (n >= 1000000000ull) snprintf(buf, (size_t)cap, "%.2f B", n / 1e9);
    else if (n >= 1000000ull) snprintf(buf, (size_t)cap, "%.2f M", n / 1e6);
    else if (n >= 1000ull) snprintf(buf, (size_t)cap, "%.1f K", n / 1e3);
    else snprintf(buf, (size_t)cap, "%llu", (unsigned long long)n);
    return buf;
}
