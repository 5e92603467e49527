#include "train/loss_plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/atomic_file.h"
#include "util/error.h"

typedef struct {
    char *buf;
    size_t len, cap;
} sbuf;

static void put(sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#include <stdarg.h>
static void put(sbuf *s, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(s->buf ? s->buf + s->len : NULL, s->buf ? s->cap - s->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if (s->buf && s->len + (size_t)n < s->cap) {
            s->len += (size_t)n;
            return;
        }
        size_t nc = (s->cap + (size_t)n + 1) * 2;
        char *nb = realloc(s->buf, nc);
        if (!nb) return;
        s->buf = nb, s->cap = nc;
    }
}

int tn_loss_plot_svg(const char *path, const int64_t *ts, const double *tl, int nt, const int64_t *vs, const double *vl, int nv,
                     const char *title) {
    const double W = 720, H = 400, L = 60, R = 20, T = 40, B = 50;
    double xmax = 1, ymin = INFINITY, ymax = -INFINITY;
    for (int i = 0; i < nt; i++) {
        if (ts[i] > xmax) xmax = (double)ts[i];
        if (isfinite(tl[i])) ymin = fmin(ymin, tl[i]), ymax = fmax(ymax, tl[i]);
    }
    for (int i = 0; i < nv; i++) {
        if (vs[i] > xmax) xmax = (double)vs[i];
        if (isfinite(vl[i])) ymin = fmin(ymin, vl[i]), ymax = fmax(ymax, vl[i]);
    }
    if (!isfinite(ymin)) ymin = 0, ymax = 1;
    if (ymax - ymin < 1e-6) ymax = ymin + 1;
    double pad = (ymax - ymin) * 0.05;
    ymin -= pad, ymax += pad;
#define X(v) (L + ((double)(v)) / xmax * (W - L - R))
#define Y(v) (T + (ymax - (v)) / (ymax - ymin) * (H - T - B))
    sbuf s = {0};
    put(&s, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
    put(&s, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n<text x=\"%g\" y=\"24\" font-size=\"15\">%s</text>\n", L, title);
    put(&s, "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"black\"/>\n", L, H - B, W - R, H - B);
    put(&s, "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"black\"/>\n", L, T, L, H - B);
    for (int k = 0; k <= 4; k++) {
        double v = ymin + (ymax - ymin) * k / 4, y = Y(v);
        put(&s, "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"#ddd\"/><text x=\"%g\" y=\"%g\" text-anchor=\"end\">%.3g</text>\n", L,
            y, W - R, y, L - 6, y + 4, v);
        double xv = xmax * k / 4;
        put(&s, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">%.0f</text>\n", X(xv), H - B + 18, xv);
    }
    put(&s, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">step</text>\n", (L + W - R) / 2, H - 12);
    put(&s, "<text x=\"16\" y=\"%g\" transform=\"rotate(-90 16 %g)\" text-anchor=\"middle\">loss</text>\n", (T + H - B) / 2, (T + H - B) / 2);
    if (nt) {
        put(&s, "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"");
        for (int i = 0; i < nt; i++)
            if (isfinite(tl[i])) put(&s, "%.1f,%.1f ", X(ts[i]), Y(tl[i]));
        put(&s, "\"/>\n");
    }
    if (nv) {
        put(&s, "<polyline fill=\"none\" stroke=\"#d62728\" stroke-width=\"2\" points=\"");
        for (int i = 0; i < nv; i++)
            if (isfinite(vl[i])) put(&s, "%.1f,%.1f ", X(vs[i]), Y(vl[i]));
        put(&s, "\"/>\n");
        for (int i = 0; i < nv; i++)
            if (isfinite(vl[i])) put(&s, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"#d62728\"/>\n", X(vs[i]), Y(vl[i]));
    }
    put(&s, "<text x=\"%g\" y=\"%g\" fill=\"#1f77b4\">train</text><text x=\"%g\" y=\"%g\" fill=\"#d62728\">validation</text>\n", W - R - 130,
        T + 4, W - R - 80, T + 4);
    put(&s, "</svg>\n");
#undef X
#undef Y
    if (!s.buf) return tn_fail("%s: out of memory", path);
    int rc = tn_write_file_atomic(path, s.buf, s.len);
    free(s.buf);
    return rc;
}
