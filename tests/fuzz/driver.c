/*
 * driver.c - runs a fuzz target without libFuzzer: every file of a seed
 * corpus, then a bounded number of deterministic mutations of them (bit
 * flips, byte changes, truncations, splices, repeats). A target is a
 * libFuzzer entry point, so the same files also build with
 * clang -fsanitize=fuzzer for open-ended fuzzing.
 *
 * usage: fuzz_X CORPUS_DIR [iterations]
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "failback/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Seeds a target adds on top of its corpus directory (may be none). */
size_t fuzz_builtin_seeds(uint8_t ***seeds, size_t **lens);

#define MAX_SEEDS 256
#define FUZZ_MAX_INPUT (128u << 10)

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t
next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

int
main(int argc, char **argv)
{
	uint8_t       *seeds[MAX_SEEDS], **extra = NULL;
	size_t         lens[MAX_SEEDS], *extra_lens = NULL, n = 0, ne, nfiles;
	long           iters = argc > 2 ? atol(argv[2]) : 20000;
	uint8_t       *buf   = malloc(FUZZ_MAX_INPUT);
	DIR           *d;
	struct dirent *e;

	fb_log_init("fuzz", FB_LOG_ERROR); /* every rejected input would log a warning */
	if (argc < 2 || buf == NULL) {
		fprintf(stderr, "usage: %s CORPUS_DIR [iterations]\n", argv[0]);
		return 2;
	}
	if ((d = opendir(argv[1])) != NULL) {
		while ((e = readdir(d)) != NULL && n < MAX_SEEDS) {
			char  path[4096];
			FILE *f;

			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", argv[1], e->d_name);
			if ((f = fopen(path, "rb")) == NULL)
				continue;
			seeds[n] = malloc(FUZZ_MAX_INPUT);
			lens[n]  = fread(seeds[n], 1, FUZZ_MAX_INPUT, f);
			fclose(f);
			n++;
		}
		closedir(d);
	}
	nfiles = n;
	ne     = fuzz_builtin_seeds(&extra, &extra_lens);
	for (size_t i = 0; i < ne && n < MAX_SEEDS; i++, n++) {
		seeds[n] = extra[i];
		lens[n]  = extra_lens[i];
	}
	if (n == 0) {
		fprintf(stderr, "%s: no seeds\n", argv[0]);
		return 2;
	}
	for (size_t i = 0; i < n; i++)
		LLVMFuzzerTestOneInput(seeds[i], lens[i]);
	for (long it = 0; it < iters; it++) {
		size_t s   = next() % n;
		size_t len = lens[s];

		memcpy(buf, seeds[s], len);
		for (int k = 0, m = 1 + (int)(next() % 4); k < m; k++) {
			switch (next() % 6) {
			case 0: /* flip a bit */
				if (len)
					buf[next() % len] ^= (uint8_t)(1u << (next() % 8));
				break;
			case 1: /* set a byte to an interesting value */
				if (len) {
					static const uint8_t v[] = {0, 0xff, 0x7f, 0x80, '<', '&', 0x0a};
					buf[next() % len] = v[next() % sizeof(v)];
				}
				break;
			case 2: /* truncate */
				if (len)
					len = next() % len;
				break;
			case 3: /* splice from another seed */
			{
				size_t o = next() % n, from, cnt, at;
				if (lens[o] == 0)
					break;
				from = next() % lens[o];
				cnt  = 1 + next() % (lens[o] - from);
				at   = len ? next() % len : 0;
				if (at + cnt > FUZZ_MAX_INPUT)
					break;
				memcpy(buf + at, seeds[o] + from, cnt);
				if (at + cnt > len)
					len = at + cnt;
				break;
			}
			case 4: /* repeat a chunk */
				if (len && len * 2 < FUZZ_MAX_INPUT) {
					size_t from = next() % len, cnt = 1 + next() % (len - from);
					memmove(buf + from + cnt, buf + from, len - from);
					len += cnt;
				}
				break;
			default: /* random byte */
				if (len)
					buf[next() % len] = (uint8_t)next();
				break;
			}
		}
		LLVMFuzzerTestOneInput(buf, len);
	}
	printf("%s: %zu seeds, %ld mutated inputs, no crash\n", argv[0], n, iters);
	for (size_t i = 0; i < nfiles; i++)
		free(seeds[i]);
	free(buf);
	return 0;
}
