/*
 * config.h - "key = value" configuration, shared by the agents and
 * failbackctl.
 *
 * A program declares its keys in a table of fb_config_key; each key owns a
 * heap string slot. A config file and command-line flags (--some-key VALUE
 * sets some_key) write the same slots, so --help, the file format and the
 * flags cannot drift apart. The parser does no I/O (fb_config_parse takes a
 * buffer), so a fuzzer can drive it.
 *
 * File syntax: one `key = value` per line; blank lines and lines starting
 * with '#' are ignored; the value is the rest of the line with surrounding
 * blanks removed, up to a '#' after a blank (a comment). A value in double
 * quotes is the text between them, '#' and blanks included (for "" or a
 * value with " #"); only a comment may follow the closing quote. Unknown keys, a missing '=', NUL bytes and lines longer
 * than 4096 bytes are errors naming the origin and line.
 */
#ifndef FAILBACK_CONFIG_H
#define FAILBACK_CONFIG_H

#include <stddef.h>

#include "failback/err.h"

typedef struct fb_config_key {
	const char *name;  /* snake_case; the flag is --name with '-' for '_' */
	char      **slot;  /* owned heap string or NULL; replaced on each set */
	const char *help;  /* one line for --help */
} fb_config_key;

/* fb_config_set stores a copy of value into the slot of key. Unknown key →
 * Invalid parameter. */
uint32_t fb_config_set(const fb_config_key *keys, size_t nkeys, const char *key,
                       const char *value, fb_err *err);

/* fb_config_parse applies every line of text (len bytes, not necessarily
 * NUL-terminated). origin names the source in error messages. On error the
 * slots set by earlier lines keep their new values. */
uint32_t fb_config_parse(const char *text, size_t len, const fb_config_key *keys, size_t nkeys,
                         const char *origin, fb_err *err);

/* fb_config_load reads path (at most 1 MiB) and parses it. */
uint32_t fb_config_load(const char *path, const fb_config_key *keys, size_t nkeys, fb_err *err);

/* fb_config_flag applies a command-line flag: argv[*i] is "--name=value" or
 * "--name" followed by the value in argv[*i + 1] (then *i is advanced).
 * Returns Invalid parameter for an unknown flag or a missing value. */
uint32_t fb_config_flag(const fb_config_key *keys, size_t nkeys, int argc, char **argv, int *i,
                        fb_err *err);

/* fb_config_help prints one line per key: "  --name VALUE   help". */
void fb_config_help(const fb_config_key *keys, size_t nkeys, void *file);

/* fb_config_free frees every slot and sets it to NULL. */
void fb_config_free(const fb_config_key *keys, size_t nkeys);

#endif
