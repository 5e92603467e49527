/* size.h - memory sizes as the command line writes them: "16G", "512M",
 * "1.5G" are powers of 1024; a bare number is bytes. */
#ifndef TUNE_SIZE_H
#define TUNE_SIZE_H

#include <stdint.h>

/* Parses text into bytes; -1 with a message naming `what` on bad input. */
int tn_parse_size(const char *text, const char *what, uint64_t *bytes);
/* Formats bytes as GiB with two decimals ("12.34 GiB") into buf. */
const char *tn_format_gib(uint64_t bytes, char *buf, int cap);
/* Formats a count as 3.21 B / 124.5 M / 42.0 K. */
const char *tn_format_count(uint64_t n, char *buf, int cap);

#endif
