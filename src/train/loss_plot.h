/* loss_plot.h - the loss curve as an SVG file: train loss per step and
 * validation loss at its steps, with axes and labels. */
#ifndef TUNE_LOSS_PLOT_H
#define TUNE_LOSS_PLOT_H

#include <stdint.h>

int tn_loss_plot_svg(const char *path, const int64_t *train_steps, const double *train_loss, int n_train, const int64_t *val_steps,
                     const double *val_loss, int n_val, const char *title);

#endif
