/*
 * disk.c - the parallel, sparse-aware disk scan of disk.h.
 *
 * One batch at a time: the calling thread reads it (holes zero-filled
 * without reading), then every worker and the caller take blocks of the
 * batch from a shared counter and hash them, then the caller visits them
 * in order. Hashing is the bottleneck (~1.5 GB/s per core), so the workers
 * do nothing else.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "failback/disk.h"
#include "failback/image.h"

#define BATCH_BLOCKS 64u
#define MAX_WORKERS  8

struct scan {
	uint8_t        *buf;
	uint32_t       *lens;
	uint8_t        *zero;
	fb_hash        *hashes;
	uint32_t        nb;
	atomic_uint     next;
	pthread_mutex_t mtx;
	pthread_cond_t  cv;
	unsigned        gen;     /* batch generation */
	unsigned        pending; /* workers still hashing this generation */
	int             stop;
};

static void
scan_hash_some(struct scan *sc)
{
	unsigned i;

	while ((i = atomic_fetch_add(&sc->next, 1)) < sc->nb) {
		const uint8_t *p = sc->buf + (size_t)i * FB_BLOCK_SIZE;

		sc->zero[i] = fb_is_zero(p, sc->lens[i]);
		if (sc->zero[i])
			sc->hashes[i] = *fb_hash_zero();
		else
			fb_hash_block(p, sc->lens[i], FB_BLOCK_SIZE, &sc->hashes[i]);
	}
}

static void *
scan_worker(void *arg)
{
	struct scan *sc   = arg;
	unsigned     seen = 0;

	for (;;) {
		pthread_mutex_lock(&sc->mtx);
		while (sc->gen == seen && !sc->stop)
			pthread_cond_wait(&sc->cv, &sc->mtx);
		if (sc->stop) {
			pthread_mutex_unlock(&sc->mtx);
			return NULL;
		}
		seen = sc->gen;
		pthread_mutex_unlock(&sc->mtx);
		scan_hash_some(sc);
		pthread_mutex_lock(&sc->mtx);
		if (--sc->pending == 0)
			pthread_cond_broadcast(&sc->cv);
		pthread_mutex_unlock(&sc->mtx);
	}
}

/* Reads [off, off+len) into buf, zero-filling holes without reading them. */
static int
scan_read(int fd, uint8_t *buf, uint64_t off, uint64_t len, uint64_t *bytes_read)
{
	uint64_t pos = off, end = off + len;

	while (pos < end) {
		off_t    d = lseek(fd, (off_t)pos, SEEK_DATA);
		uint64_t data_end;

		if (d < 0 && errno == ENXIO) { /* only a hole remains */
			memset(buf + (pos - off), 0, end - pos);
			return 0;
		}
		if (d < 0) /* no SEEK_DATA here: read everything */
			d = (off_t)pos;
		if ((uint64_t)d > pos) {
			uint64_t z = ((uint64_t)d < end ? (uint64_t)d : end) - pos;
			memset(buf + (pos - off), 0, z);
			pos += z;
			continue;
		}
		{
			off_t h  = lseek(fd, (off_t)pos, SEEK_HOLE);
			data_end = h < 0 || (uint64_t)h > end ? end : (uint64_t)h;
			if (data_end <= pos)
				data_end = end;
		}
		while (pos < data_end) {
			ssize_t r = pread(fd, buf + (pos - off), data_end - pos, (off_t)pos);

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				return r < 0 ? -1 : -2;
			pos += (uint64_t)r;
			*bytes_read += (uint64_t)r;
		}
	}
	return 0;
}

uint32_t
fb_disk_hash(const char *path, fb_disk_visit visit, void *arg, fb_disk_scan *out, fb_err *err)
{
	return fb_disk_hash_format(path, "raw", visit, arg, out, err);
}

uint32_t
fb_disk_hash_format(const char *path, const char *format, fb_disk_visit visit, void *arg,
                    fb_disk_scan *out, fb_err *err)
{
	struct scan sc;
	struct stat st, st2;
	pthread_t   workers[MAX_WORKERS];
	int         nworkers = 0, fd = -1;
	long        ncpu     = sysconf(_SC_NPROCESSORS_ONLN);
	uint32_t    rv       = FB_RV_OK;
	fb_disk_scan res     = {0};
	fb_image    *im      = NULL;

	memset(&sc, 0, sizeof(sc));
	if (format != NULL && format[0] != '\0' && strcmp(format, "raw") != 0) {
		if ((rv = fb_image_open(path, format, &im, err)) != FB_RV_OK)
			return rv;
		res.size = fb_image_size(im);
		memset(&st, 0, sizeof(st));
	} else {
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			return fb_err_errno(err, errno, path);
		if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
			close(fd);
			return fb_err_set(err, FB_RV_INVALID_PARAMETER, "%s: not a regular file", path);
		}
		if (st.st_size == 0) {
			close(fd);
			return fb_err_set(err, FB_RV_INVALID_PARAMETER, "%s: empty disk image", path);
		}
		posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
		res.size = (uint64_t)st.st_size;
	}
	res.nblocks = (res.size + FB_BLOCK_SIZE - 1) / FB_BLOCK_SIZE;
	sc.buf    = malloc((size_t)BATCH_BLOCKS * FB_BLOCK_SIZE);
	sc.lens   = calloc(BATCH_BLOCKS, sizeof(*sc.lens));
	sc.zero   = calloc(BATCH_BLOCKS, 1);
	sc.hashes = calloc(BATCH_BLOCKS, sizeof(fb_hash));
	res.leaves = malloc(res.nblocks * sizeof(fb_hash));
	if (!sc.buf || !sc.lens || !sc.zero || !sc.hashes || !res.leaves) {
		rv = fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory for %llu leaves",
		                (unsigned long long)res.nblocks);
		goto out;
	}
	pthread_mutex_init(&sc.mtx, NULL);
	pthread_cond_init(&sc.cv, NULL);
	for (long i = 1; i < ncpu && nworkers < MAX_WORKERS; i++)
		if (pthread_create(&workers[nworkers], NULL, scan_worker, &sc) == 0)
			nworkers++;

	for (uint64_t first = 0; first < res.nblocks && rv == FB_RV_OK; first += BATCH_BLOCKS) {
		uint32_t nb  = (uint32_t)(res.nblocks - first < BATCH_BLOCKS ? res.nblocks - first
		                                                              : BATCH_BLOCKS);
		uint64_t off = first * FB_BLOCK_SIZE;
		uint64_t len = res.size - off < (uint64_t)nb * FB_BLOCK_SIZE
		                   ? res.size - off
		                   : (uint64_t)nb * FB_BLOCK_SIZE;
		int      r;

		if (im != NULL) {
			if ((rv = fb_image_read(im, sc.buf, off, len, &res.bytes_read, err)) != FB_RV_OK)
				break;
		} else if ((r = scan_read(fd, sc.buf, off, len, &res.bytes_read)) != 0) {
			rv = r == -2 ? fb_err_set(err, FB_RV_FAILED,
			                          "%s: disk shrank while hashing (at byte %llu)", path,
			                          (unsigned long long)off)
			             : fb_err_errno(err, errno, path);
			break;
		}
		for (uint32_t i = 0; i < nb; i++)
			sc.lens[i] = (uint32_t)(len - (uint64_t)i * FB_BLOCK_SIZE < FB_BLOCK_SIZE
			                            ? len - (uint64_t)i * FB_BLOCK_SIZE
			                            : FB_BLOCK_SIZE);
		pthread_mutex_lock(&sc.mtx);
		sc.nb = nb;
		atomic_store(&sc.next, 0);
		sc.pending = (unsigned)nworkers;
		sc.gen++;
		pthread_cond_broadcast(&sc.cv);
		pthread_mutex_unlock(&sc.mtx);
		scan_hash_some(&sc);
		pthread_mutex_lock(&sc.mtx);
		while (sc.pending > 0)
			pthread_cond_wait(&sc.cv, &sc.mtx);
		pthread_mutex_unlock(&sc.mtx);
		for (uint32_t i = 0; i < nb && rv == FB_RV_OK; i++) {
			res.leaves[first + i] = sc.hashes[i];
			if (visit != NULL)
				rv = visit(arg, first + i, sc.buf + (size_t)i * FB_BLOCK_SIZE, sc.lens[i],
				           &sc.hashes[i], sc.zero[i], err);
		}
	}
	pthread_mutex_lock(&sc.mtx);
	sc.stop = 1;
	pthread_cond_broadcast(&sc.cv);
	pthread_mutex_unlock(&sc.mtx);
	for (int i = 0; i < nworkers; i++)
		pthread_join(workers[i], NULL);
	pthread_mutex_destroy(&sc.mtx);
	pthread_cond_destroy(&sc.cv);
	if (rv == FB_RV_OK && im == NULL && (fstat(fd, &st2) != 0 || st2.st_size != st.st_size))
		rv = fb_err_set(err, FB_RV_FAILED,
		                "%s: disk changed size while hashing (%lld → %lld bytes)", path,
		                (long long)st.st_size, (long long)st2.st_size);
out:
	if (fd >= 0)
		close(fd);
	fb_image_close(im);
	free(sc.buf);
	free(sc.lens);
	free(sc.zero);
	free(sc.hashes);
	if (rv != FB_RV_OK) {
		free(res.leaves);
		return rv;
	}
	*out = res;
	return FB_RV_OK;
}

uint32_t
fb_disk_rehash(const char *path, uint64_t size, const uint64_t *blocks, size_t n, fb_hash *leaves,
               fb_err *err)
{
	return fb_disk_rehash_visit(path, size, blocks, n, leaves, NULL, NULL, err);
}

#define PREFETCH_BLOCKS 64 /* 4 MiB asked for ahead of the reads */

/* Reads and hashes blocks[0..n) of the image at path (format NULL or raw:
 * directly; else through qemu-nbd). */
static uint32_t
rehash(const char *path, const char *format, uint64_t size, const uint64_t *blocks, size_t n,
       fb_hash *leaves, fb_disk_visit visit, void *arg, fb_err *err)
{
	uint8_t  *blk = malloc(FB_BLOCK_SIZE);
	fb_image *im  = NULL;
	int       fd  = -1;
	uint32_t  rv  = FB_RV_OK;

	if (blk == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	if (format != NULL && format[0] != '\0' && strcmp(format, "raw") != 0) {
		if (n > 0 && (rv = fb_image_open(path, format, &im, err)) != FB_RV_OK) {
			free(blk);
			return rv;
		}
	} else if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		free(blk);
		return fb_err_set(err, FB_RV_FAILED, "%s: %s", path, strerror(errno));
	}
	for (size_t i = 0, ahead = 0; i < n && rv == FB_RV_OK; i++) {
		uint64_t off = blocks[i] * FB_BLOCK_SIZE, rd = 0;

		/* scattered blocks: ask for the next ones while this one is read,
		 * so the device serves several at once (a cold cache) */
		for (; fd >= 0 && ahead < n && ahead < i + PREFETCH_BLOCKS; ahead++)
			(void)posix_fadvise(fd, (off_t)(blocks[ahead] * FB_BLOCK_SIZE), FB_BLOCK_SIZE,
			                    POSIX_FADV_WILLNEED);
		size_t   len = off >= size ? 0 : size - off < FB_BLOCK_SIZE ? (size_t)(size - off)
		                                                            : FB_BLOCK_SIZE;
		fb_hash *h   = &leaves[blocks[i]];

		if (len == 0)
			rv = fb_err_set(err, FB_RV_FAILED, "%s: cannot read block %llu: past the end",
			                path, (unsigned long long)blocks[i]);
		else if (im != NULL)
			rv = fb_image_read(im, blk, off, len, &rd, err);
		else if (pread(fd, blk, len, (off_t)off) != (ssize_t)len)
			rv = fb_err_set(err, FB_RV_FAILED, "%s: cannot read block %llu: %s", path,
			                (unsigned long long)blocks[i], strerror(errno));
		if (rv != FB_RV_OK)
			break;
		fb_hash_block(blk, len, FB_BLOCK_SIZE, h);
		if (visit != NULL)
			rv = visit(arg, blocks[i], blk, (uint32_t)len, h,
			           memcmp(h, fb_hash_zero(), sizeof(*h)) == 0, err);
	}
	if (fd >= 0)
		close(fd);
	fb_image_close(im);
	free(blk);
	return rv;
}

uint32_t
fb_disk_rehash_marked(const char *path, const char *format, uint64_t size, const uint8_t *marks,
                      uint64_t nblocks, fb_hash *leaves, fb_disk_visit visit, void *arg,
                      uint64_t *n, fb_err *err)
{
	uint64_t *list = malloc((nblocks + 1) * sizeof(*list));
	uint32_t  rv;

	*n = 0;
	if (list == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	for (uint64_t b = 0; b < nblocks; b++)
		if (marks[b])
			list[(*n)++] = b;
	rv = rehash(path, format, size, list, (size_t)*n, leaves, visit, arg, err);
	free(list);
	return rv;
}

uint32_t
fb_disk_rehash_visit(const char *path, uint64_t size, const uint64_t *blocks, size_t n,
                     fb_hash *leaves, fb_disk_visit visit, void *arg, fb_err *err)
{
	return rehash(path, NULL, size, blocks, n, leaves, visit, arg, err);
}
