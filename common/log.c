/*
 * log.c - the line format of log.h. Each line is built in one buffer and
 * written with one write(2), so lines from different threads never
 * interleave.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "failback/log.h"

static const char       *log_prog  = "failback";
static enum fb_log_level log_level = FB_LOG_INFO;

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

/* Whether stderr is the journal (systemd sets JOURNAL_STREAM to its
 * "device:inode"): lines then start with their syslog priority, "<3>" to
 * "<7>", which journald strips and records. */
static int
log_to_journal(void)
{
	const char   *js = getenv("JOURNAL_STREAM");
	unsigned long dev, ino;
	struct stat   st;

	if (js == NULL || sscanf(js, "%lu:%lu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) != 0)
		return 0;
	return (unsigned long)st.st_dev == dev && (unsigned long)st.st_ino == ino;
}

static int journal;

void
fb_log_init(const char *prog, enum fb_log_level level)
{
	journal = log_to_journal();
	log_prog  = prog;
	log_level = level;
}

int
fb_log_level_parse(const char *s, enum fb_log_level *out)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};

	for (int i = 0; i < 4; i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (enum fb_log_level)i;
			return 0;
		}
	}
	return -1;
}

int
fb_log_enabled(enum fb_log_level level)
{
	return level <= log_level;
}

/* Appends to line[*n..cap), keeping *n within the buffer. */
static void
log_append(char *line, size_t *n, size_t cap, const char *fmt, va_list ap)
{
	int r = vsnprintf(line + *n, cap - *n, fmt, ap);

	if (r > 0)
		*n = (size_t)r < cap - *n ? *n + (size_t)r : cap - 1;
}

static void
log_appendf(char *line, size_t *n, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
log_appendf(char *line, size_t *n, size_t cap, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_append(line, n, cap, fmt, ap);
	va_end(ap);
}

static void
log_vwrite(enum fb_log_level level, const char *msgid, const char *suffix, const char *fmt,
           va_list ap)
{
	char           line[2048];
	size_t         cap = sizeof(line) - 1; /* room for the newline */
	struct timeval tv;
	struct tm      tm;
	size_t         n;

	static const char prio[] = {'3', '4', '6', '7'}; /* err, warning, info, debug */

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = 0;
	if (journal)
		log_appendf(line, &n, cap, "<%c>", prio[level]);
	n += strftime(line + n, cap - n, "%Y-%m-%dT%H:%M:%S", &tm);
	log_appendf(line, &n, cap, ".%03dZ %s[%d] %s %s ", (int)(tv.tv_usec / 1000), log_prog,
	            (int)getpid(), level_names[level], msgid);
	log_append(line, &n, cap, fmt, ap);
	if (suffix != NULL)
		log_appendf(line, &n, cap, ": %s", suffix);
	/* One event, one line: control characters from the wire (a method name,
	 * a path) must not be able to forge or break log lines. */
	for (size_t i = journal ? 3 : 0; i < n; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			line[i] = '?';
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, n);
}

void
fb_log(enum fb_log_level level, const char *msgid, const char *fmt, ...)
{
	va_list ap;

	if (!fb_log_enabled(level))
		return;
	va_start(ap, fmt);
	log_vwrite(level, msgid, NULL, fmt, ap);
	va_end(ap);
}

void
fb_log_warn_errno(const char *msgid, const char *fmt, ...)
{
	va_list ap;
	int     saved = errno;

	if (!fb_log_enabled(FB_LOG_WARN))
		return;
	va_start(ap, fmt);
	log_vwrite(FB_LOG_WARN, msgid, strerror(saved), fmt, ap);
	va_end(ap);
}
