#include "model/presets.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "util/embedded.h"

int tn_preset_count(void) { return tn_preset_files_count; }

const char *tn_preset_name(int i, char *buf, int cap) {
    const char *n = tn_preset_files[i].name;
    size_t len = strlen(n);
    if (len > 5 && !strcmp(n + len - 5, ".json")) len -= 5;
    snprintf(buf, (size_t)cap, "%.*s", (int)len, n);
    return buf;
}

const char *tn_preset_config(const char *name) {
    const char *slash = strrchr(name, '/');
    if (slash) name = slash + 1;
    char buf[128];
    for (int i = 0; i < tn_preset_files_count; i++) {
        tn_preset_name(i, buf, sizeof buf);
        size_t n = strlen(buf);
        if (strlen(name) != n) continue;
        size_t k = 0;
        while (k < n && tolower((unsigned char)name[k]) == buf[k]) k++;
        if (k == n) return tn_preset_files[i].data;
    }
    return NULL;
}
