/* presets.h - the built-in presets: the published config.json of each
 * supported model (src/model/presets/, compiled in), so `tune check` and
 * `tune init` work with no weights on disk. */
#ifndef TUNE_PRESETS_H
#define TUNE_PRESETS_H

/* Number of presets and the name of the i-th ("gemma-2-9b-it"). */
int tn_preset_count(void);
const char *tn_preset_name(int i, char *buf, int cap);
/* The config.json text of a preset, or NULL. Accepts the preset name in any
 * case, or a Hugging Face id such as "google/gemma-2-9b-it". */
const char *tn_preset_config(const char *name);

#endif
