/*
 * tracker.c - change tracking of raw disks (DESIGN §2a, issue 10): a qcow2
 * wrapper over each raw disk, holding a persistent 64 KiB dirty bitmap
 * named after the point the disk's base counts from. The replica agent
 * tracks its recovery disks (from a failover, and from each completed
 * failback); a primary agent with change_tracking = qcow2 tracks the disks
 * it serves in place, from each point it takes (tracker_roll), so the next
 * point, and after a failover this site's failback home, read only what
 * the VM wrote since.
 *
 *   <disk>          the raw image, as before: the product reads and writes
 *                   it directly, and it stays a standalone raw image
 *   <disk>.qcow2    qcow2 metadata only (data_file=<disk>,
 *                   data_file_raw=on): the file the hypervisor opens, so
 *                   every write of the VM lands in the raw file and sets
 *                   bits in the bitmap fb-<point GUID>
 *
 * At failback the bitmap is read straight from the qcow2 file (qcow2.h: no
 * QEMU tool is started, so none can hang the job) and only the dirty
 * blocks are read and hashed. The bitmap is believed only when it is
 * there, enabled, not in use (a writer that did not close the image
 * cleanly leaves it so), of 64 KiB granularity, with the raw file as the
 * wrapper's data file, the size unchanged, and the raw file not modified
 * after the wrapper (QEMU stores the bitmap when it closes the image, so a
 * later write went around it); otherwise the caller falls back to the full
 * compare, and says why. A write around the wrapper that is followed by
 * another open and close of the wrapper is not seen: the full verification
 * catches it, the fast one does not (docs/STORAGE.md).
 *
 * A recovery disk that is itself a qcow2 image (recovery_format = qcow2)
 * needs no wrapper: its bitmap lives in the image ("in-image"), the file
 * the hypervisor opens anyway, and nothing can write the disk around it.
 *
 * Tools: qemu-img (qemu-utils) makes and rolls the bitmaps, run with a
 * deadline.
 * QEMU 7.2's `qemu-img create -o data_file=` zeroes an existing data file,
 * so the wrapper is made over a scratch file and then amended.
 */
#define _GNU_SOURCE /* pipe2, memmem */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "failback/clock.h"
#include "failback/fsops.h"
#include "failback/hash.h"
#include "failback/image.h"
#include "failback/log.h"
#include "failback/qcow2.h"
#include "failback/tracker.h"

extern char **environ;

#define TOOL_MS 30000 /* metadata of small files: one that takes longer is stuck */

void
tracker_wrapper(const char *raw, char *out, size_t cap)
{
	snprintf(out, cap, "%s.qcow2", raw);
}

/* A disk of any format but raw carries its bitmap itself. */
static int
in_image(const char *format)
{
	return format != NULL && format[0] != '\0' && strcmp(format, "raw") != 0;
}

void
tracker_image(const char *disk, const char *format, char *out, size_t cap)
{
	if (in_image(format))
		snprintf(out, cap, "%s", disk);
	else
		tracker_wrapper(disk, out, cap);
}

/* A QEMU tool with the tracker's deadline. */
static int
tool_run(const char *const *argv, char *out, size_t cap, fb_err *err)
{
	return fb_tool_run(argv, out, cap, TOOL_MS, err);
}

/* The first line of a tool's output, for a message. */
static const char *
first_line(char *s)
{
	s[strcspn(s, "\n")] = '\0';
	return s;
}

int
tracker_available(void)
{
	char   out[256];
	fb_err e = {0};

	return tool_run((const char *[]){"qemu-img", "--version", NULL}, out, sizeof(out), &e) == 0;
}

/* Whether the qcow2 file at wrapper has raw as its data file. */
static int
wrapper_of(const char *raw, const char *wrapper)
{
	char        info[16384];
	const char *p;
	fb_err      e = {0};

	return tool_run((const char *[]){"qemu-img", "info", "-U", "-f", "qcow2", "--output=json",
	                                 wrapper, NULL},
	                info, sizeof(info), &e) == 0 &&
	       (p = fb_json_key(info, "data-file")) != NULL &&
	       strncmp(p + 1, raw, strlen(raw)) == 0 && p[1 + strlen(raw)] == '"';
}

static uint32_t bitmaps_prune(const char *image, const char *info, const char *keep,
                              const char *keep2, fb_err *err);
static uint32_t bitmap_add(const char *image, const char *name, fb_err *err);

/* The bitmap of a qcow2 disk starts over from rp: every fb- bitmap goes
 * and an empty fb-<rp> comes. Without -U, qemu-img info fails while a
 * writer (the VM) holds the image. */
static uint32_t
create_in_image(const char *disk, uint64_t size, const char *rp, fb_err *err)
{
	char        info[16384], name[64];
	const char *p;
	int         rc;

	snprintf(name, sizeof(name), "fb-%s", rp);
	if ((rc = tool_run((const char *[]){"qemu-img", "info", "-f", "qcow2", "--output=json",
	                                    disk, NULL},
	                   info, sizeof(info), err)) != 0) {
		if (rc > 0)
			fb_err_set(err, strstr(info, "lock") != NULL ? FB_RV_SYSTEM_IN_USE : FB_RV_FAILED,
			           "%s: %s", disk, first_line(info));
		return err->rv != FB_RV_OK ? err->rv : FB_RV_FAILED;
	}
	if ((p = fb_json_key(info, "virtual-size")) == NULL || strtoull(p, NULL, 10) != size)
		return fb_err_set(err, FB_RV_INVALID_STATE, "%s is not %llu bytes", disk,
		                  (unsigned long long)size);
	if (bitmaps_prune(disk, info, NULL, NULL, err) != FB_RV_OK)
		return err->rv;
	return bitmap_add(disk, name, err);
}

uint32_t
tracker_create(const char *raw, const char *format, uint64_t size, const char *rp, fb_err *err)
{
	char   wrapper[4200], scratch[4300], opt[8800], sz[32], name[64], out[2048];
	int    rc;
	size_t k;

	if (in_image(format))
		return create_in_image(raw, size, rp, err);
	tracker_wrapper(raw, wrapper, sizeof(wrapper));
	/* A disk taken in place may have a file of that name that is not its
	 * wrapper (the operator's own): it is never replaced. */
	if (access(wrapper, F_OK) == 0 && !wrapper_of(raw, wrapper))
		return fb_err_set(err, FB_RV_INVALID_STATE,
		                  "%s is there but is not a qcow2 wrapper of %s: it is left alone, "
		                  "and the disk is not tracked",
		                  wrapper, raw);
	snprintf(scratch, sizeof(scratch), "%s.scratch", wrapper);
	snprintf(sz, sizeof(sz), "%llu", (unsigned long long)size);
	snprintf(name, sizeof(name), "fb-%s", rp);
	unlink(wrapper);
	unlink(scratch);
	/* over a scratch data file: create would zero an existing one (a path's
	 * commas doubled: one option value) */
	k = (size_t)snprintf(opt, sizeof(opt), "data_file=");
	if (fb_qemu_opt(opt, sizeof(opt), &k, scratch) != 0 ||
	    k + sizeof(",data_file_raw=on") > sizeof(opt))
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "%s: path too long", raw);
	snprintf(opt + k, sizeof(opt) - k, ",data_file_raw=on");
	if ((rc = tool_run((const char *[]){"qemu-img", "create", "-q", "-f", "qcow2", "-o", opt, wrapper,
	                                sz, NULL},
	               out, sizeof(out), err)) != 0)
		goto fail;
	k = (size_t)snprintf(opt, sizeof(opt), "data_file=");
	(void)fb_qemu_opt(opt, sizeof(opt), &k, raw); /* fits: the scratch's path is longer */
	if ((rc = tool_run((const char *[]){"qemu-img", "amend", "-f", "qcow2", "-o", opt, wrapper,
	                                NULL},
	               out, sizeof(out), err)) != 0)
		goto fail;
	unlink(scratch);
	if ((rc = tool_run((const char *[]){"qemu-img", "bitmap", "-f", "qcow2", "--add",
	                                "--granularity", "65536", wrapper, name, NULL},
	               out, sizeof(out), err)) != 0)
		goto fail;
	chmod(wrapper, 0600);
	return FB_RV_OK;
fail:
	unlink(scratch);
	unlink(wrapper);
	if (rc > 0)
		fb_err_set(err, FB_RV_FAILED, "qcow2 wrapper for %s: %s", raw, first_line(out));
	return err->rv != FB_RV_OK ? err->rv : FB_RV_FAILED;
}

/*
 * The object of bitmap name in qemu-img info's JSON: 0 with [*start, *end)
 * spanning it, or -1. A wrapper holds at most two bitmaps: the one of its
 * base's point and, while a primary's point is being taken, the next.
 */
static int
bitmap_object(const char *info, const char *name, const char **start, const char **end)
{
	char        pat[96];
	const char *b = fb_json_key(info, "bitmaps"), *lim = b, *p, *s, *e;
	int         depth = 0;

	if (b == NULL || *b != '[')
		return -1;
	/* the array's end: flags are arrays inside it */
	for (; *lim != '\0'; lim++) {
		depth += *lim == '[' ? 1 : *lim == ']' ? -1 : 0;
		if (depth == 0)
			break;
	}
	snprintf(pat, sizeof(pat), "\"name\": \"%s\"", name);
	if ((p = strstr(b, pat)) == NULL || p > lim)
		return -1;
	for (s = p; s > b && *s != '{'; s--)
		;
	if ((e = strchr(p, '}')) == NULL || *s != '{')
		return -1;
	*start = s;
	*end   = e;
	return 0;
}

/*
 * Whether the bitmap fb-<rp> of a tracked disk can be believed, from the
 * wrapper's metadata (read straight from the file, qcow2.h) and times
 * alone: 1, or 0 with why. With bits, its bits are read too (*out).
 */
static int
trust(const char *raw, const char *format, uint64_t size, const char *rp, fb_qcow2_bitmap *out,
      int bits, char *why, size_t cap)
{
	char             wrapper[4200], name[64], said[400];
	struct stat      st;
	int              inimg = in_image(format);
	fb_qcow2_bitmap *b     = out;

	snprintf(name, sizeof(name), "fb-%s", rp);
	tracker_image(raw, format, wrapper, sizeof(wrapper));
	if (stat(wrapper, &st) != 0) {
		snprintf(why, cap, "no qcow2 wrapper (%s)", wrapper);
		return 0;
	}
	if (fb_qcow2_find(wrapper, name, b, said, sizeof(said)) != 0) {
		snprintf(why, cap, "%s", said);
		return 0;
	}
	/* a wrapper must hold exactly the raw file, at its size */
	if (!inimg && strcmp(b->data_file, raw) != 0) {
		snprintf(why, cap, "the wrapper's data file is not %s", raw);
		return 0;
	}
	if (b->size != size) {
		snprintf(why, cap, "the disk's size changed since the wrapper was made");
		return 0;
	}
	if (b->flags & FB_QCOW2_IN_USE) {
		snprintf(why, cap, "bitmap %s is in use: its writer did not close the image "
		         "cleanly (or still runs)", name);
		return 0;
	}
	if (!(b->flags & FB_QCOW2_AUTO)) {
		snprintf(why, cap, "bitmap %s is disabled: it did not record writes", name);
		return 0;
	}
	if (b->granularity != FB_BLOCK_SIZE) {
		snprintf(why, cap, "bitmap %s is not of 64 KiB granularity", name);
		return 0;
	}
	/* QEMU writes the bitmap into the wrapper when it closes it, after the
	 * writes it tracked: a raw file written later was written around it.
	 * (A disk with its bitmap inside has no around.) */
	if (!inimg) {
		struct stat rs;

		if (stat(raw, &rs) != 0 || rs.st_mtim.tv_sec > st.st_mtim.tv_sec ||
		    (rs.st_mtim.tv_sec == st.st_mtim.tv_sec && rs.st_mtim.tv_nsec > st.st_mtim.tv_nsec)) {
			snprintf(why, cap, "the raw disk was written after its wrapper was last closed "
			         "(something wrote it around the wrapper)");
			return 0;
		}
	}
	if (bits && fb_qcow2_read(wrapper, name, size, b, said, sizeof(said)) != 0) {
		snprintf(why, cap, "%s", said);
		return 0;
	}
	return 1;
}

int
tracker_dirty(const char *raw, const char *format, uint64_t size, const char *rp, uint8_t **bits,
              char *why, size_t cap)
{
	fb_qcow2_bitmap b;

	*bits = NULL;
	if (!trust(raw, format, size, rp, &b, 1, why, cap))
		return 0;
	if (b.nbits != (size + FB_BLOCK_SIZE - 1) / FB_BLOCK_SIZE) {
		snprintf(why, cap, "bitmap fb-%s holds %llu bits for %llu blocks", rp,
		         (unsigned long long)b.nbits,
		         (unsigned long long)((size + FB_BLOCK_SIZE - 1) / FB_BLOCK_SIZE));
		free(b.bits);
		return 0;
	}
	*bits = b.bits;
	return 1;
}

/*
 * The base: the leaf hashes of the disk when its bitmap started, in
 * "<raw>.leaves" (magic, the point's GUID, the block count, the leaves).
 * The bitmap and the base must name the same point; a failback that is
 * about to write removes the base (its writes bypass the wrapper), and
 * leaves the new one as "<raw>.leaves.new" for tracker_commit.
 */
#define BASE_MAGIC "FBLEAVS1"

struct base_head {
	char     magic[8];
	char     rp[40];
	uint64_t nblocks;
};

uint32_t
tracker_base_write(const char *raw, const char *rp, const fb_hash *leaves, uint64_t n,
                   int pending, fb_err *err)
{
	char             path[4200], tmp[4300];
	struct base_head h;
	int              fd;
	uint32_t         rv = FB_RV_OK;

	snprintf(path, sizeof(path), "%s.leaves%s", raw, pending ? ".new" : "");
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, BASE_MAGIC, 8);
	snprintf(h.rp, sizeof(h.rp), "%s", rp);
	h.nblocks = n;
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
		return fb_err_errno(err, errno, tmp);
	if (write(fd, &h, sizeof(h)) != (ssize_t)sizeof(h) ||
	    write(fd, leaves, n * sizeof(fb_hash)) != (ssize_t)(n * sizeof(fb_hash)) ||
	    fsync(fd) != 0)
		rv = fb_err_errno(err, errno, tmp);
	close(fd);
	if (rv == FB_RV_OK && rename(tmp, path) != 0)
		rv = fb_err_errno(err, errno, path);
	if (rv != FB_RV_OK)
		unlink(tmp);
	else
		fb_fs_fsync_dir(path);
	return rv;
}

/* Reads a base file: 0 with *leaves (free()) and rp, or -1 with why. */
static int
base_read(const char *path, uint64_t nblocks, fb_hash **leaves, char *rp, char *why, size_t cap)
{
	struct base_head h;
	struct stat      st;
	int              fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t           len;

	*leaves = NULL;
	if (fd < 0) {
		snprintf(why, cap, "no base leaves (%s: %s)", path, strerror(errno));
		return -1;
	}
	len = (size_t)nblocks * sizeof(fb_hash);
	if (fstat(fd, &st) != 0 || (uint64_t)st.st_size != sizeof(h) + len ||
	    read(fd, &h, sizeof(h)) != (ssize_t)sizeof(h) || memcmp(h.magic, BASE_MAGIC, 8) != 0 ||
	    h.nblocks != nblocks || h.rp[sizeof(h.rp) - 1] != '\0' || !fb_id_valid(h.rp)) {
		snprintf(why, cap, "%s is not the base of a disk of %llu blocks", path,
		         (unsigned long long)nblocks);
		close(fd);
		return -1;
	}
	if ((*leaves = malloc(len + 1)) == NULL ||
	    read(fd, *leaves, len) != (ssize_t)len) {
		snprintf(why, cap, "%s: cannot read the leaves", path);
		free(*leaves);
		*leaves = NULL;
		close(fd);
		return -1;
	}
	close(fd);
	memcpy(rp, h.rp, FB_ID_LEN);
	rp[FB_ID_LEN] = '\0';
	return 0;
}

int
tracker_changed(const char *raw, const char *format, uint64_t size, fb_hash **leaves,
                uint8_t **bits, char *rp, char *why, size_t cap)
{
	char     path[4200];
	uint64_t nblocks = (size + FB_BLOCK_SIZE - 1) / FB_BLOCK_SIZE;

	*leaves = NULL;
	*bits   = NULL;
	snprintf(path, sizeof(path), "%s.leaves", raw);
	/* the base names the point; the bitmap of that point must be there */
	if (base_read(path, nblocks, leaves, rp, why, cap) != 0)
		return 0;
	if (!tracker_dirty(raw, format, size, rp, bits, why, cap)) {
		free(*leaves);
		*leaves = NULL;
		return 0;
	}
	return 1;
}

void
tracker_suspend(const char *raw)
{
	char path[4200];

	snprintf(path, sizeof(path), "%s.leaves", raw);
	if (unlink(path) == 0)
		fb_fs_fsync_dir(path);
}

/*
 * After a failback to the point the disk's bitmap already counts from (its
 * only bitmap, trusted but for the writes the failback made around it),
 * one QEMU run clears that bitmap; making the wrapper anew takes three.
 * 0 when done; -1 when the image is anything else or the run failed (the
 * caller then makes the bitmap anew).
 */
static int
restart_cleared(const char *raw, const char *format, uint64_t size, const char *rp)
{
	char            image[4200], name[64], why[256], out[2048];
	fb_qcow2_bitmap b;
	fb_err          e     = {0};
	int             inimg = in_image(format);

	tracker_image(raw, format, image, sizeof(image));
	snprintf(name, sizeof(name), "fb-%s", rp);
	if (fb_qcow2_find(image, name, &b, why, sizeof(why)) != 0 || b.nbitmaps != 1 ||
	    (!inimg && strcmp(b.data_file, raw) != 0) || b.size != size ||
	    (b.flags & FB_QCOW2_IN_USE) || !(b.flags & FB_QCOW2_AUTO) ||
	    b.granularity != FB_BLOCK_SIZE)
		return -1;
	if (tool_run((const char *[]){"qemu-img", "bitmap", "-f", "qcow2", "--clear", image, name,
	                              NULL},
	             out, sizeof(out), &e) != 0)
		return -1;
	/* The bitmap counts from now: the wrapper must be newer than the raw
	 * file the failback wrote (trust() compares the two). */
	if (!inimg && utimensat(AT_FDCWD, image, NULL, 0) != 0)
		return -1;
	return 0;
}

uint32_t
tracker_commit(const char *raw, const char *format, uint64_t size, fb_err *err)
{
	char     next[4200], base[4200], rp[FB_ID_LEN + 1], why[256];
	fb_hash *leaves;

	snprintf(next, sizeof(next), "%s.leaves.new", raw);
	snprintf(base, sizeof(base), "%s.leaves", raw);
	if (access(next, F_OK) != 0)
		return FB_RV_OK; /* nothing pending */
	if (base_read(next, (size + FB_BLOCK_SIZE - 1) / FB_BLOCK_SIZE, &leaves, rp, why,
	              sizeof(why)) != 0) {
		unlink(next);
		return fb_err_set(err, FB_RV_FAILED, "%s", why);
	}
	free(leaves);
	/* the bitmap first: a base without its bitmap is never believed */
	if (restart_cleared(raw, format, size, rp) != 0 &&
	    tracker_create(raw, format, size, rp, err) != FB_RV_OK)
		return err->rv;
	if (rename(next, base) != 0)
		return fb_err_errno(err, errno, base);
	fb_fs_fsync_dir(base);
	return FB_RV_OK;
}

/* The point the base of raw counts from ("" without a base). */
static void
base_point(const char *raw, char *rp)
{
	char             path[4200];
	struct base_head h;
	int              fd;

	rp[0] = '\0';
	snprintf(path, sizeof(path), "%s.leaves", raw);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return;
	if (read(fd, &h, sizeof(h)) == (ssize_t)sizeof(h) && memcmp(h.magic, BASE_MAGIC, 8) == 0 &&
	    h.rp[sizeof(h.rp) - 1] == '\0' && fb_id_valid(h.rp)) {
		memcpy(rp, h.rp, FB_ID_LEN);
		rp[FB_ID_LEN] = '\0';
	}
	close(fd);
}

int
tracker_trusted(const char *raw, const char *format, uint64_t size, char *rp, char *why,
                size_t cap)
{
	base_point(raw, rp);
	if (rp[0] == '\0') {
		snprintf(why, cap, "no base leaves next to %s", raw);
		return 0;
	}
	{
		fb_qcow2_bitmap b;

		return trust(raw, format, size, rp, &b, 0, why, cap);
	}
}

uint32_t
tracker_roll(const char *raw, const char *format, uint64_t size, const char *rp, fb_err *err)
{
	char        wrapper[4200], info[16384], keep[FB_ID_LEN + 1], next[64];
	const char *p, *lim;
	int         rc, inimg = in_image(format);

	tracker_image(raw, format, wrapper, sizeof(wrapper));
	if (!inimg && access(wrapper, F_OK) != 0)
		return tracker_create(raw, format, size, rp, err);
	/* Without -U: fails while a writer (the VM's QEMU) holds the image. */
	if ((rc = tool_run((const char *[]){"qemu-img", "info", "-f", "qcow2", "--output=json",
	                                    wrapper, NULL},
	                   info, sizeof(info), err)) != 0) {
		if (rc > 0 && strstr(info, "lock") != NULL)
			fb_err_set(err, FB_RV_SYSTEM_IN_USE, "%s is open (the VM runs?): %s", wrapper,
			           first_line(info));
		else if (rc > 0)
			fb_err_set(err, FB_RV_INVALID_STATE, "%s is not a qcow2 wrapper of %s (%s): it "
			           "is left alone, and the disk is not tracked",
			           wrapper, raw, first_line(info));
		return err->rv;
	}
	/* A file of that name that is not this disk's wrapper is someone
	 * else's: it is never replaced. One of another size is remade. */
	if (!inimg && ((p = fb_json_key(info, "data-file")) == NULL ||
	               strncmp(p + 1, raw, strlen(raw)) != 0 || p[1 + strlen(raw)] != '"'))
		return fb_err_set(err, FB_RV_INVALID_STATE,
		                  "%s is there but is not a qcow2 wrapper of %s: it is left alone, "
		                  "and the disk is not tracked",
		                  wrapper, raw);
	/* a disk of another size starts over (a qcow2 disk keeps its data) */
	if ((p = fb_json_key(info, "virtual-size")) == NULL || strtoull(p, NULL, 10) != size)
		return tracker_create(raw, format, size, rp, err);
	/* Stale bitmaps go: all but the base's point's and the next one. */
	base_point(raw, keep);
	snprintf(next, sizeof(next), "fb-%s", rp);
	if (bitmaps_prune(wrapper, info, keep[0] ? keep : NULL, rp, err) != FB_RV_OK)
		return err->rv;
	if (bitmap_object(info, next, &p, &lim) == 0)
		return FB_RV_OK; /* there from a point that did not commit */
	return bitmap_add(wrapper, next, err);
}

/* Removes every fb- bitmap that qemu-img info's JSON of image lists, but
 * those of the points keep and keep2 (NULL: none). */
static uint32_t
bitmaps_prune(const char *image, const char *info, const char *keep, const char *keep2,
              fb_err *err)
{
	const char *b = fb_json_key(info, "bitmaps"), *lim, *p;
	char        out[2048];
	int         rc, depth = 0;

	if (b == NULL || *b != '[')
		return FB_RV_OK;
	for (lim = b; *lim != '\0'; lim++) {
		depth += *lim == '[' ? 1 : *lim == ']' ? -1 : 0;
		if (depth == 0)
			break;
	}
	for (p = b; (p = strstr(p, "\"name\": \"")) != NULL && p < lim; p++) {
		char name[64] = "";

		if (sscanf(p + 9, "%63[^\"]", name) != 1 || strncmp(name, "fb-", 3) != 0 ||
		    (keep != NULL && strcmp(name + 3, keep) == 0) ||
		    (keep2 != NULL && strcmp(name + 3, keep2) == 0))
			continue;
		if ((rc = tool_run((const char *[]){"qemu-img", "bitmap", "-f", "qcow2", "--remove",
		                                    image, name, NULL},
		                   out, sizeof(out), err)) != 0) {
			if (rc > 0)
				fb_err_set(err, FB_RV_FAILED, "bitmaps of %s: %s", image, first_line(out));
			return err->rv != FB_RV_OK ? err->rv : FB_RV_FAILED;
		}
	}
	return FB_RV_OK;
}

/* Adds an empty, enabled, persistent 64 KiB bitmap name to image. */
static uint32_t
bitmap_add(const char *image, const char *name, fb_err *err)
{
	char out[2048];
	int  rc;

	if ((rc = tool_run((const char *[]){"qemu-img", "bitmap", "-f", "qcow2", "--add",
	                                    "--granularity", "65536", image, name, NULL},
	                   out, sizeof(out), err)) != 0) {
		if (rc > 0)
			fb_err_set(err, FB_RV_FAILED, "bitmaps of %s: %s", image, first_line(out));
		return err->rv != FB_RV_OK ? err->rv : FB_RV_FAILED;
	}
	return FB_RV_OK;
}
