#include "model/source.h"

#include <stdio.h>
#include <string.h>

#include "io/json.h"
#include "model/presets.h"
#include "util/error.h"
#include "util/platform.h"

int tn_model_source_open(const char *arg, tn_model_source *src) {
    memset(src, 0, sizeof *src);
    snprintf(src->path, sizeof src->path, "%s", arg);
    if (tn_is_directory(arg)) {
        src->kind = TN_SOURCE_FOLDER;
        char cfg[4200];
        snprintf(cfg, sizeof cfg, "%s/config.json", arg);
        if (!tn_file_exists(cfg)) return tn_fail("%s: no config.json in this folder (expected a Hugging Face model folder)", arg);
        return tn_spec_load(cfg, &src->spec);
    }
    if (tn_file_exists(arg)) {
        src->kind = TN_SOURCE_CONFIG;
        return tn_spec_load(arg, &src->spec);
    }
    const char *text = tn_preset_config(arg);
    if (!text) {
        char names[2048] = "", buf[128];
        for (int i = 0; i < tn_preset_count(); i++) {
            if (strlen(names) + 130 >= sizeof names) break;
            strcat(names, i ? ", " : "");
            strcat(names, tn_preset_name(i, buf, sizeof buf));
        }
        return tn_fail("%s: not a model folder, a config file or a preset (presets: %s)", arg, names);
    }
    src->kind = TN_SOURCE_PRESET;
    char where[256];
    snprintf(where, sizeof where, "preset %s", arg);
    cJSON *c = tn_json_parse(text, strlen(text), where);
    if (!c) return -1;
    int rc = tn_spec_from_config(c, where, &src->spec);
    cJSON_Delete(c);
    return rc;
}
