/*
 * log.h - one line per event on stderr, journald-friendly:
 *
 *   2026-11-24T10:00:00.123Z failback-replica[4242] INFO FB1001 listening ...
 *
 * Every call names a stable message id (FBnnnn) so operators can grep and
 * alert on events without parsing prose. fb_log_warn_errno appends
 * strerror(errno), as OpenBSD's log_warn does; the others do not.
 */
#ifndef FAILBACK_LOG_H
#define FAILBACK_LOG_H

enum fb_log_level { FB_LOG_ERROR = 0, FB_LOG_WARN, FB_LOG_INFO, FB_LOG_DEBUG };

/* fb_log_init sets the program name shown in each line and the threshold.
 * Not thread-safe; call once before starting threads. */
void fb_log_init(const char *prog, enum fb_log_level level);

/* fb_log_level_parse maps "error", "warn", "info", "debug"; returns 0 on
 * success, -1 for anything else (out untouched). */
int fb_log_level_parse(const char *s, enum fb_log_level *out);

/* fb_log_enabled is true when a message at level would be written. */
int fb_log_enabled(enum fb_log_level level);

void fb_log(enum fb_log_level level, const char *msgid, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void fb_log_warn_errno(const char *msgid, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define fb_log_error(id, ...) fb_log(FB_LOG_ERROR, id, __VA_ARGS__)
#define fb_log_warn(id, ...)  fb_log(FB_LOG_WARN, id, __VA_ARGS__)
#define fb_log_info(id, ...)  fb_log(FB_LOG_INFO, id, __VA_ARGS__)
#define fb_log_debug(id, ...) fb_log(FB_LOG_DEBUG, id, __VA_ARGS__)

#endif
