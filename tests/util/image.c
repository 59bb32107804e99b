/*
 * image.c - see image.h. Content per 1 MiB region, by the seeded generator:
 * 40% random, 35% text-like, 25% zero (a hole).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "image.h"

#define REGION (1u << 20)

static uint64_t
next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void
fill_random(uint8_t *p, size_t n, uint64_t *s)
{
	for (size_t i = 0; i + 8 <= n; i += 8) {
		uint64_t v = next(s);
		memcpy(p + i, &v, 8);
	}
}

static void
fill_text(uint8_t *p, size_t n, uint64_t *s)
{
	static const char *words[] = {"replica ", "failback ", "primary ", "block ", "the ",
	                              "recovery ", "point ", "disk ", "of ", "and ", "log\n"};
	size_t i = 0;

	while (i < n) {
		const char *w = words[next(s) % 11];
		size_t      k = strlen(w);

		if (k > n - i)
			k = n - i;
		memcpy(p + i, w, k);
		i += k;
	}
}

int
fbt_image_make(const char *path, uint64_t size, uint32_t seed)
{
	uint8_t *buf = malloc(REGION);
	uint64_t s   = 0x9e3779b97f4a7c15ull ^ seed;
	int      fd  = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	int      rv  = -1;

	if (buf == NULL || fd < 0)
		goto out;
	for (uint64_t off = 0; off < size; off += REGION) {
		size_t   n    = size - off < REGION ? (size_t)(size - off) : REGION;
		unsigned kind = (unsigned)(next(&s) % 100);

		if (kind < 25)
			continue; /* hole */
		if (kind < 65)
			fill_random(buf, n, &s);
		else
			fill_text(buf, n, &s);
		if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n)
			goto out;
	}
	rv = ftruncate(fd, (off_t)size);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rv;
}

int
fbt_image_mutate(const char *path, uint64_t count, uint32_t seed)
{
	uint8_t     buf[65536];
	uint64_t    s  = 0x2545f4914f6cdd1dull ^ seed;
	int         fd = open(path, O_WRONLY);
	struct stat st;
	uint64_t    nblocks;

	if (fd < 0 || fstat(fd, &st) != 0)
		return -1;
	nblocks = ((uint64_t)st.st_size + sizeof(buf) - 1) / sizeof(buf);
	for (uint64_t i = 0; i < count; i++) {
		uint64_t b = next(&s) % nblocks;
		fill_random(buf, sizeof(buf), &s);
		if (pwrite(fd, buf, sizeof(buf), (off_t)(b * sizeof(buf))) != (ssize_t)sizeof(buf)) {
			close(fd);
			return -1;
		}
	}
	close(fd);
	return (int)count;
}

int
fbt_file_sha256(const char *path, char *hex)
{
	static const char digits[] = "0123456789abcdef";
	EVP_MD_CTX       *ctx      = EVP_MD_CTX_new();
	uint8_t           buf[1 << 16], md[32];
	unsigned int      len;
	ssize_t           n;
	int               fd = open(path, O_RDONLY);

	if (fd < 0)
		return -1;
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		EVP_DigestUpdate(ctx, buf, (size_t)n);
	close(fd);
	EVP_DigestFinal_ex(ctx, md, &len);
	EVP_MD_CTX_free(ctx);
	for (int i = 0; i < 32; i++) {
		hex[2 * i]     = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[64] = '\0';
	return 0;
}

int
fbt_qemu_dir(const char *test, char *dir, size_t cap)
{
	const char *tools[] = {"/usr/bin/qemu-img", "/usr/bin/qemu-nbd", "/usr/bin/qemu-io"};

	for (size_t i = 0; i < sizeof(tools) / sizeof(tools[0]); i++)
		if (access(tools[i], X_OK) != 0) {
			fprintf(stderr, "%s needs qemu-utils (%s is missing): apt-get install qemu-utils\n",
			        test, tools[i]);
			return -1;
		}
	snprintf(dir, cap, "%s/%s.XXXXXX", getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp",
	         test);
	return mkdtemp(dir) == NULL ? -1 : 0;
}
