/*
 * metrics.h - the Prometheus text exposition format (version 0.0.4), written
 * into a growing buffer: a family's HELP and TYPE lines, then its samples.
 * Label values are escaped here (backslash, quote, newline). A buffer that
 * ran out of memory is marked oom and holds what fitted.
 */
#ifndef FAILBACK_METRICS_H
#define FAILBACK_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct fb_metrics {
	char  *p;
	size_t len, cap;
	int    oom;
} fb_metrics;

/* fb_metrics_family starts a family: type is "counter", "gauge" or
 * "histogram". */
void fb_metrics_family(fb_metrics *m, const char *name, const char *type, const char *help);

/* fb_metrics_sample writes one sample; labels is NULL or pairs of name and
 * value, NULL-terminated: {"type", "124", NULL}. */
void fb_metrics_sample(fb_metrics *m, const char *name, const char *const *labels, double value);

/* Histograms of durations in seconds, over fixed buckets. */
#define FB_METRICS_BUCKETS 9
extern const double fb_metrics_bounds[FB_METRICS_BUCKETS];

typedef struct fb_histogram {
	uint64_t counts[FB_METRICS_BUCKETS]; /* per bucket, not cumulative */
	uint64_t n;
	double   sum;
} fb_histogram;

void fb_histogram_observe(fb_histogram *h, double v);

/* fb_metrics_histogram writes name_bucket (cumulative, with +Inf),
 * name_sum and name_count, with labels on each. */
void fb_metrics_histogram(fb_metrics *m, const char *name, const char *const *labels,
                          const fb_histogram *h);

void fb_metrics_free(fb_metrics *m);

#endif
