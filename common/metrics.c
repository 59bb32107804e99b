/*
 * metrics.c - the text format of metrics.h.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "failback/metrics.h"

const double fb_metrics_bounds[FB_METRICS_BUCKETS] = {1, 5, 15, 60, 300, 900, 3600, 14400, 86400};

static void
put(fb_metrics *m, const char *s, size_t n)
{
	if (m->oom)
		return;
	if (m->len + n + 1 > m->cap) {
		size_t cap = m->cap ? m->cap : 4096;
		char  *p;

		while (m->len + n + 1 > cap)
			cap *= 2;
		if ((p = realloc(m->p, cap)) == NULL) {
			m->oom = 1;
			return;
		}
		m->p   = p;
		m->cap = cap;
	}
	memcpy(m->p + m->len, s, n);
	m->len += n;
	m->p[m->len] = '\0';
}

static void putf(fb_metrics *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
putf(fb_metrics *m, const char *fmt, ...)
{
	char    buf[1024];
	va_list ap;
	int     n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0)
		put(m, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

void
fb_metrics_family(fb_metrics *m, const char *name, const char *type, const char *help)
{
	putf(m, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
put_labels(fb_metrics *m, const char *const *labels, const char *extra_name,
           const char *extra_value)
{
	int first = 1;

	if ((labels == NULL || labels[0] == NULL) && extra_name == NULL)
		return;
	put(m, "{", 1);
	for (size_t i = 0; labels != NULL && labels[i] != NULL && labels[i + 1] != NULL; i += 2) {
		if (!first)
			put(m, ",", 1);
		first = 0;
		putf(m, "%s=\"", labels[i]);
		for (const char *c = labels[i + 1]; *c != '\0'; c++) {
			if (*c == '\\' || *c == '"')
				putf(m, "\\%c", *c);
			else if (*c == '\n')
				put(m, "\\n", 2);
			else
				put(m, c, 1);
		}
		put(m, "\"", 1);
	}
	if (extra_name != NULL)
		putf(m, "%s%s=\"%s\"", first ? "" : ",", extra_name, extra_value);
	put(m, "}", 1);
}

static void
put_value(fb_metrics *m, double v)
{
	if (isinf(v))
		put(m, v > 0 ? " +Inf\n" : " -Inf\n", 6);
	else if (v == (double)(int64_t)v && fabs(v) < 9e15)
		putf(m, " %lld\n", (long long)v);
	else
		putf(m, " %.17g\n", v);
}

void
fb_metrics_sample(fb_metrics *m, const char *name, const char *const *labels, double value)
{
	put(m, name, strlen(name));
	put_labels(m, labels, NULL, NULL);
	put_value(m, value);
}

void
fb_histogram_observe(fb_histogram *h, double v)
{
	size_t i = 0;

	while (i < FB_METRICS_BUCKETS && v > fb_metrics_bounds[i])
		i++;
	if (i < FB_METRICS_BUCKETS)
		h->counts[i]++;
	h->n++;
	h->sum += v;
}

void
fb_metrics_histogram(fb_metrics *m, const char *name, const char *const *labels,
                     const fb_histogram *h)
{
	uint64_t cum = 0;
	char     le[32];

	for (size_t i = 0; i < FB_METRICS_BUCKETS; i++) {
		cum += h->counts[i];
		snprintf(le, sizeof(le), "%g", fb_metrics_bounds[i]);
		putf(m, "%s_bucket", name);
		put_labels(m, labels, "le", le);
		put_value(m, (double)cum);
	}
	putf(m, "%s_bucket", name);
	put_labels(m, labels, "le", "+Inf");
	put_value(m, (double)h->n);
	putf(m, "%s_sum", name);
	put_labels(m, labels, NULL, NULL);
	put_value(m, h->sum);
	putf(m, "%s_count", name);
	put_labels(m, labels, NULL, NULL);
	put_value(m, (double)h->n);
}

void
fb_metrics_free(fb_metrics *m)
{
	free(m->p);
	memset(m, 0, sizeof(*m));
}
