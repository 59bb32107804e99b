/*
 * store.c - pack files and their index (see store.h for the protocol).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "failback/crc32c.h"
#include "failback/fsops.h"
#include "failback/log.h"
#include "failback/store.h"

#define PACK_MAX   (1ull << 30)
#define HDR_LEN    FB_STORE_HEADER
#define HDR_MAGIC  0x314b4246u /* "FBK1" little-endian */
#define MAX_PACKS  4096

struct freed {
	uint32_t pack;
	uint64_t offset;
	uint64_t len;
};

struct fb_store {
	fb_db          *db;
	char            dir[4000];
	pthread_mutex_t mtx; /* guards the fields below */
	uint32_t        cur_pack;
	int             cur_fd;
	uint64_t        cur_size;
	int             unsynced_fds[8];
	int             nunsynced;
	struct freed   *freed;
	size_t          nfreed, capfreed;
	sqlite3_stmt   *find; /* the index lookup, prepared once; guarded by the db's lock */
};

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void
fb_store_pack_path(const fb_store *s, uint32_t pack, char *out, size_t len)
{
	snprintf(out, len, "%s/pack-%06u", s->dir, pack);
}

/* Creates the first pack numbered >= pack that nobody else has: every
 * opener (the agent, a supervised worker) appends to a pack of its own. */
static uint32_t
store_open_pack(fb_store *s, uint32_t pack, fb_err *err)
{
	char        path[4096];
	struct stat st;
	int         fd;

	for (;; pack++) {
		fb_store_pack_path(s, pack, path, sizeof(path));
		if ((fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) >= 0)
			break;
		if (errno != EEXIST)
			return fb_err_errno(err, errno, path);
	}
	if (fstat(fd, &st) != 0) {
		close(fd);
		return fb_err_errno(err, errno, path);
	}
	if (fb_fs_fsync_dir(path) != 0) {
		close(fd);
		return fb_err_errno(err, errno, "fsync blocks directory");
	}
	s->cur_pack = pack;
	s->cur_fd   = fd;
	s->cur_size = (uint64_t)st.st_size;
	return FB_RV_OK;
}

/* Truncates unindexed tails and punches unindexed gaps in every pack. */
static uint32_t
store_reclaim(fb_store *s, uint32_t maxpack, fb_err *err)
{
	sqlite3_stmt *st;
	uint32_t      rv;

	for (uint32_t p = 1; p <= maxpack; p++) {
		char        path[4096];
		uint64_t    pos = 0;
		int         fd, rc;
		struct stat sb;

		fb_store_pack_path(s, p, path, sizeof(path));
		if ((fd = open(path, O_RDWR | O_CLOEXEC)) < 0)
			continue;
		if (fstat(fd, &sb) == 0 && sb.st_size == 0) { /* an opener that wrote nothing */
			close(fd);
			unlink(path);
			continue;
		}
		fb_db_lock(s->db);
		if ((rv = fb_db_prepare(s->db,
		                        "SELECT offset, stored_len FROM blocks WHERE pack = ? "
		                        "ORDER BY offset",
		                        &st, err)) != FB_RV_OK) {
			fb_db_unlock(s->db);
			close(fd);
			return rv;
		}
		sqlite3_bind_int64(st, 1, p);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			uint64_t off = (uint64_t)sqlite3_column_int64(st, 0);
			uint64_t len = HDR_LEN + (uint64_t)sqlite3_column_int64(st, 1);

			if (off > pos)
				(void)fb_fs_punch(fd, (off_t)pos, (off_t)(off - pos));
			pos = off + len;
		}
		sqlite3_finalize(st);
		fb_db_unlock(s->db);
		if (fstat(fd, &sb) == 0 && (uint64_t)sb.st_size > pos) {
			fb_log_info("FB3001", "%s: dropping %llu unindexed bytes after %llu", path,
			            (unsigned long long)((uint64_t)sb.st_size - pos),
			            (unsigned long long)pos);
			if (fb_fs_ftruncate(fd, (off_t)pos) != 0 || fb_fs_fsync(fd) != 0) {
				rv = fb_err_errno(err, errno, path);
				close(fd);
				return rv;
			}
		}
		close(fd);
	}
	return FB_RV_OK;
}

uint32_t
fb_store_open(fb_store **out, fb_db *db, const char *dir, int flags, fb_err *err)
{
	fb_store      *s;
	DIR           *d;
	struct dirent *e;
	uint32_t       maxpack = 0, rv;

	if (strlen(dir) >= sizeof(s->dir))
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "store path too long");
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return fb_err_errno(err, errno, dir);
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	s->db     = db;
	s->cur_fd = -1;
	snprintf(s->dir, sizeof(s->dir), "%s", dir);
	pthread_mutex_init(&s->mtx, NULL);
	if ((d = opendir(dir)) == NULL) {
		rv = fb_err_errno(err, errno, dir);
		free(s);
		return rv;
	}
	while ((e = readdir(d)) != NULL) {
		unsigned p;
		if (sscanf(e->d_name, "pack-%06u", &p) == 1 && p > maxpack && p < MAX_PACKS * 1024u)
			maxpack = p;
	}
	closedir(d);
	if (((flags & FB_STORE_NO_RECLAIM) == 0 && (rv = store_reclaim(s, maxpack, err)) != FB_RV_OK) ||
	    (rv = store_open_pack(s, maxpack + 1, err)) != FB_RV_OK) {
		fb_store_close(s);
		return rv;
	}
	*out = s;
	return FB_RV_OK;
}

void
fb_store_close(fb_store *s)
{
	if (s == NULL)
		return;
	for (int i = 0; i < s->nunsynced; i++)
		if (s->unsynced_fds[i] != s->cur_fd)
			close(s->unsynced_fds[i]);
	if (s->cur_fd >= 0)
		close(s->cur_fd);
	free(s->freed);
	if (s->find != NULL) {
		fb_db_lock(s->db);
		sqlite3_finalize(s->find);
		fb_db_unlock(s->db);
	}
	pthread_mutex_destroy(&s->mtx);
	free(s);
}

static void
store_mark_unsynced(fb_store *s, int fd)
{
	for (int i = 0; i < s->nunsynced; i++)
		if (s->unsynced_fds[i] == fd)
			return;
	s->unsynced_fds[s->nunsynced++] = fd;
}

uint32_t
fb_store_sync(fb_store *s, fb_err *err)
{
	uint32_t rv = FB_RV_OK;

	pthread_mutex_lock(&s->mtx);
	for (int i = 0; i < s->nunsynced; i++) {
		int fd = s->unsynced_fds[i];

		if (rv == FB_RV_OK && fb_fs_fsync(fd) != 0)
			rv = fb_err_errno(err, errno, "fsync block pack");
		if (fd != s->cur_fd)
			close(fd);
	}
	s->nunsynced = 0;
	if (rv != FB_RV_OK) /* keep the current pack for a retry */
		store_mark_unsynced(s, s->cur_fd);
	pthread_mutex_unlock(&s->mtx);
	return rv;
}

/* Per-thread buffers and zstd contexts, freed when the thread ends (a
 * pthread key's destructor), so fetcher threads leave nothing behind. */
struct store_scratch {
	uint8_t   *wrec, *rrec;
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
};

static pthread_key_t  scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void
store_scratch_free(void *p)
{
	struct store_scratch *sc = p;

	free(sc->wrec);
	free(sc->rrec);
	ZSTD_freeCCtx(sc->cctx);
	ZSTD_freeDCtx(sc->dctx);
	free(sc);
}

static void
store_scratch_key(void)
{
	(void)pthread_key_create(&scratch_key, store_scratch_free);
}

static struct store_scratch *
store_scratch(void)
{
	struct store_scratch *sc;

	pthread_once(&scratch_once, store_scratch_key);
	if ((sc = pthread_getspecific(scratch_key)) == NULL &&
	    (sc = calloc(1, sizeof(*sc))) != NULL && pthread_setspecific(scratch_key, sc) != 0) {
		free(sc);
		sc = NULL;
	}
	return sc;
}

/* Writes the record built in sc->wrec (header filled here) at the end of
 * the current pack. */
static uint32_t
store_write_record(fb_store *s, struct store_scratch *sc, const fb_hash *h, uint32_t stored,
                   uint32_t len, uint32_t flags, fb_store_loc *loc, fb_err *err)
{
	uint32_t rv = FB_RV_OK;

	put32(sc->wrec, HDR_MAGIC);
	put32(sc->wrec + 4, stored);
	put32(sc->wrec + 8, len);
	put32(sc->wrec + 12, flags);
	memcpy(sc->wrec + 16, h->b, FB_HASH_LEN);

	pthread_mutex_lock(&s->mtx);
	if (s->cur_size + HDR_LEN + stored > PACK_MAX) {
		int old = s->cur_fd;
		if (s->nunsynced == 8) {
			rv = fb_err_set(err, FB_RV_FAILED, "too many packs written without a sync");
			goto out;
		}
		store_mark_unsynced(s, old);
		if ((rv = store_open_pack(s, s->cur_pack + 1, err)) != FB_RV_OK) {
			s->cur_fd = old;
			goto out;
		}
	}
	if (fb_fs_pwrite(s->cur_fd, sc->wrec, HDR_LEN + stored, (off_t)s->cur_size) < 0) {
		rv = fb_err_errno(err, errno, "write block pack");
		goto out;
	}
	loc->pack       = s->cur_pack;
	loc->offset     = s->cur_size;
	loc->stored_len = stored;
	loc->raw_len    = len;
	loc->flags      = flags;
	loc->crc        = fb_crc32c(0, sc->wrec, HDR_LEN + stored);
	loc->has_crc    = 1;
	s->cur_size += HDR_LEN + stored;
	store_mark_unsynced(s, s->cur_fd);
out:
	pthread_mutex_unlock(&s->mtx);
	return rv;
}

static struct store_scratch *
store_scratch_w(fb_err *err)
{
	struct store_scratch *sc = store_scratch();

	if (sc == NULL || (sc->wrec == NULL &&
	                   (sc->wrec = malloc(HDR_LEN + ZSTD_COMPRESSBOUND(FB_BLOCK_SIZE))) == NULL)) {
		fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
		return NULL;
	}
	return sc;
}

uint32_t
fb_store_append(fb_store *s, const fb_hash *h, const void *data, uint32_t len, fb_store_loc *loc,
                fb_err *err)
{
	struct store_scratch *sc;
	size_t                cap = HDR_LEN + ZSTD_COMPRESSBOUND(FB_BLOCK_SIZE);
	uint32_t              stored = len, flags = 0;

	if (len == 0 || len > FB_BLOCK_SIZE)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "block of %u bytes", len);
	if ((sc = store_scratch_w(err)) == NULL)
		return err->rv;
	if (sc->cctx == NULL)
		sc->cctx = ZSTD_createCCtx();
	if (sc->cctx != NULL) {
		size_t c = ZSTD_compressCCtx(sc->cctx, sc->wrec + HDR_LEN, cap - HDR_LEN, data, len, 1);
		if (!ZSTD_isError(c) && c <= len - len / 8) {
			stored = (uint32_t)c;
			flags  = FB_STORE_ZSTD;
		}
	}
	if (flags == 0)
		memcpy(sc->wrec + HDR_LEN, data, len);
	return store_write_record(s, sc, h, stored, len, flags, loc, err);
}

uint32_t
fb_store_append_as(fb_store *s, const fb_hash *h, const void *data, const void *z, uint32_t zlen,
                   fb_store_loc *loc, fb_err *err)
{
	struct store_scratch *sc;
	unsigned long long    raw;

	if (z == NULL)
		zlen = 0;
	if (zlen > ZSTD_COMPRESSBOUND(FB_BLOCK_SIZE))
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "compressed block of %u bytes", zlen);
	raw = zlen > 0 ? ZSTD_getFrameContentSize(z, zlen) : FB_BLOCK_SIZE;
	/* One frame, all of z: what a read decodes is what raw says. */
	if (raw == 0 || raw > FB_BLOCK_SIZE || /* also the two error values */
	    (zlen > 0 && ZSTD_findFrameCompressedSize(z, zlen) != zlen))
		return fb_store_append(s, h, data, FB_BLOCK_SIZE, loc, err);
	if ((sc = store_scratch_w(err)) == NULL)
		return err->rv;
	memcpy(sc->wrec + HDR_LEN, zlen > 0 ? z : data, zlen > 0 ? zlen : FB_BLOCK_SIZE);
	return store_write_record(s, sc, h, zlen > 0 ? zlen : FB_BLOCK_SIZE, (uint32_t)raw,
	                          zlen > 0 ? FB_STORE_ZSTD : 0, loc, err);
}

/* Looks h up in the index; the caller holds the db's lock. The statement
 * is prepared once per store (a lookup per block served or received made
 * SQL parsing a visible share of a replication) and reset after each use,
 * so no read transaction outlives the call. */
static uint32_t
store_find(fb_store *s, const fb_hash *h, fb_store_loc *loc, int *found, fb_err *err)
{
	sqlite3_stmt *st;
	uint32_t      rv;
	int           rc;

	if (s->find == NULL &&
	    (rv = fb_db_prepare(s->db,
	                        "SELECT pack, offset, stored_len, raw_len, flags, crc FROM blocks "
	                        "WHERE hash = ?",
	                        &s->find, err)) != FB_RV_OK)
		return rv;
	st = s->find;
	sqlite3_bind_blob(st, 1, h->b, FB_HASH_LEN, SQLITE_STATIC);
	rc     = sqlite3_step(st);
	*found = rc == SQLITE_ROW;
	if (*found && loc != NULL) {
		loc->pack       = (uint32_t)sqlite3_column_int64(st, 0);
		loc->offset     = (uint64_t)sqlite3_column_int64(st, 1);
		loc->stored_len = (uint32_t)sqlite3_column_int64(st, 2);
		loc->raw_len    = (uint32_t)sqlite3_column_int64(st, 3);
		loc->flags      = (uint32_t)sqlite3_column_int64(st, 4);
		loc->has_crc    = sqlite3_column_type(st, 5) != SQLITE_NULL;
		loc->crc        = (uint32_t)sqlite3_column_int64(st, 5);
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return fb_db_err(s->db, rc, "block index", err);
	return FB_RV_OK;
}

uint32_t
fb_store_contains(fb_store *s, const fb_hash *h, int *present, fb_err *err)
{
	uint32_t rv;

	fb_db_lock(s->db);
	rv = store_find(s, h, NULL, present, err);
	fb_db_unlock(s->db);
	return rv;
}

void
fb_store_expect(fb_store *s, uint64_t n)
{
	const char *db = sqlite3_db_filename(fb_db_handle(s->db), "main");
	char        wal[4200];
	const char *paths[2] = {db, wal};
	int         fds[2]   = {-1, -1};
	uint64_t    pages    = 0;
	struct stat st;

	if (db == NULL || db[0] == '\0' || snprintf(wal, sizeof(wal), "%s-wal", db) >= (int)sizeof(wal))
		return;
	for (int i = 0; i < 2; i++)
		if ((fds[i] = open(paths[i], O_RDONLY | O_CLOEXEC)) >= 0 && fstat(fds[i], &st) == 0)
			pages += (uint64_t)st.st_size / 4096;
	for (int i = 0; i < 2; i++) {
		if (fds[i] < 0)
			continue;
		if (n >= pages / 32)
			(void)posix_fadvise(fds[i], 0, 0, POSIX_FADV_WILLNEED);
		close(fds[i]);
	}
}

uint32_t
fb_store_locate(fb_store *s, const fb_hash *h, fb_store_loc *loc, fb_err *err)
{
	char     hex[65];
	uint32_t rv;
	int      found;

	fb_db_lock(s->db);
	rv = store_find(s, h, loc, &found, err);
	fb_db_unlock(s->db);
	if (rv == FB_RV_OK && !found) {
		fb_hash_hex(h, hex);
		return fb_err_set(err, FB_RV_FILE_NOT_FOUND, "block %s is not in the store", hex);
	}
	return rv;
}

uint32_t
fb_store_index_add(fb_store *s, const fb_hash *h, const fb_store_loc *loc, int64_t refs,
                   int *added, fb_err *err)
{
	sqlite3_stmt *st;
	uint32_t      rv;
	int           rc;

	if ((rv = fb_db_prepare(s->db,
	                        "INSERT OR IGNORE INTO blocks (hash, pack, offset, stored_len, "
	                        "raw_len, flags, refs, crc) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
	                        &st, err)) != FB_RV_OK)
		return rv;
	sqlite3_bind_blob(st, 1, h->b, FB_HASH_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, loc->pack);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)loc->offset);
	sqlite3_bind_int64(st, 4, loc->stored_len);
	sqlite3_bind_int64(st, 5, loc->raw_len);
	sqlite3_bind_int64(st, 6, loc->flags);
	sqlite3_bind_int64(st, 7, refs);
	if (loc->has_crc)
		sqlite3_bind_int64(st, 8, loc->crc);
	else
		sqlite3_bind_null(st, 8);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return fb_db_err(s->db, rc, "block index", err);
	if (added != NULL)
		*added = sqlite3_changes(fb_db_handle(s->db)) > 0;
	return FB_RV_OK;
}

/* One reference change with a prepared statement (reset after use). */
static uint32_t
store_ref_one(fb_store *s, sqlite3_stmt *st, const fb_hash *h, int64_t delta, fb_err *err)
{
	int rc;

	sqlite3_bind_int64(st, 1, delta);
	sqlite3_bind_blob(st, 2, h->b, FB_HASH_LEN, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return fb_db_err(s->db, rc, "block index", err);
	if (sqlite3_changes(fb_db_handle(s->db)) == 0) {
		char hex[65];
		fb_hash_hex(h, hex);
		return fb_err_set(err, FB_RV_FAILED, "block %s is missing from the store", hex);
	}
	return FB_RV_OK;
}

uint32_t
fb_store_ref(fb_store *s, const fb_hash *h, int64_t delta, fb_err *err)
{
	return fb_store_ref_leaves(s, h, 1, delta, err);
}

uint32_t
fb_store_ref_leaves(fb_store *s, const fb_hash *hashes, uint64_t n, int64_t delta, fb_err *err)
{
	return fb_store_ref_deltas(s, hashes, NULL, delta, n, err);
}

uint32_t
fb_store_ref_deltas(fb_store *s, const fb_hash *hashes, const int64_t *deltas, int64_t delta,
                    uint64_t n, fb_err *err)
{
	const fb_hash *zero = fb_hash_zero();
	sqlite3_stmt  *st;
	uint32_t       rv = FB_RV_OK;

	if ((rv = fb_db_prepare(s->db, "UPDATE blocks SET refs = refs + ? WHERE hash = ?", &st,
	                        err)) != FB_RV_OK)
		return rv;
	for (uint64_t i = 0; i < n && rv == FB_RV_OK; i++)
		if (memcmp(&hashes[i], zero, sizeof(*zero)) != 0 && (deltas == NULL || deltas[i] != 0))
			rv = store_ref_one(s, st, &hashes[i], deltas != NULL ? deltas[i] : delta, err);
	sqlite3_finalize(st);
	return rv;
}

uint32_t
fb_store_sweep(fb_store *s, uint64_t *freed_blocks, fb_err *err)
{
	sqlite3_stmt *st;
	uint32_t      rv;
	int           rc;
	uint64_t      n = 0;

	if ((rv = fb_db_prepare(s->db,
	                        "SELECT pack, offset, stored_len FROM blocks WHERE refs <= 0", &st,
	                        err)) != FB_RV_OK)
		return rv;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (s->nfreed == s->capfreed) {
			size_t        cap = s->capfreed ? s->capfreed * 2 : 256;
			struct freed *f   = realloc(s->freed, cap * sizeof(*f));
			if (f == NULL) {
				sqlite3_finalize(st);
				return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
			}
			s->freed    = f;
			s->capfreed = cap;
		}
		s->freed[s->nfreed].pack   = (uint32_t)sqlite3_column_int64(st, 0);
		s->freed[s->nfreed].offset = (uint64_t)sqlite3_column_int64(st, 1);
		s->freed[s->nfreed].len    = HDR_LEN + (uint64_t)sqlite3_column_int64(st, 2);
		s->nfreed++;
		n++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return fb_db_err(s->db, rc, "block index", err);
	if ((rv = fb_db_exec(s->db, "DELETE FROM blocks WHERE refs <= 0", err)) != FB_RV_OK)
		return rv;
	if (freed_blocks != NULL)
		*freed_blocks = n;
	return FB_RV_OK;
}

/* Gives a record's bytes back to the filesystem. */
static void
store_punch(fb_store *s, uint32_t pack, uint64_t offset, uint64_t len)
{
	char path[4096];
	int  fd;

	fb_store_pack_path(s, pack, path, sizeof(path));
	if ((fd = open(path, O_RDWR | O_CLOEXEC)) < 0)
		return;
	(void)fb_fs_punch(fd, (off_t)offset, (off_t)len);
	close(fd);
}

void
fb_store_release(fb_store *s)
{
	for (size_t i = 0; i < s->nfreed; i++)
		store_punch(s, s->freed[i].pack, s->freed[i].offset, s->freed[i].len);
	s->nfreed = 0;
}

void
fb_store_discard(fb_store *s, const fb_store_loc *loc)
{
	store_punch(s, loc->pack, loc->offset, HDR_LEN + (uint64_t)loc->stored_len);
}

void
fb_store_forget(fb_store *s)
{
	s->nfreed = 0;
}

uint32_t
fb_store_get_packed(fb_store *s, const fb_hash *h, void *buf, void *z, uint32_t *zlen,
                    fb_err *err)
{
	struct store_scratch *sc = store_scratch();
	fb_store_loc               loc;
	char                       path[4096], hex[65];
	fb_hash                    got;
	uint32_t                   rv;
	ssize_t                    n;
	int                        fd;

	if (zlen != NULL)
		*zlen = 0;
	if (memcmp(h, fb_hash_zero(), sizeof(*h)) == 0) {
		memset(buf, 0, FB_BLOCK_SIZE);
		return FB_RV_OK;
	}
	if (sc == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	if ((rv = fb_store_locate(s, h, &loc, err)) != FB_RV_OK)
		return rv;
	fb_store_pack_path(s, loc.pack, path, sizeof(path));
	fb_hash_hex(h, hex);
	if (loc.stored_len > ZSTD_COMPRESSBOUND(FB_BLOCK_SIZE) || loc.raw_len > FB_BLOCK_SIZE)
		return fb_err_set(err, FB_RV_FAILED, "block %s: corrupt index entry (pack %u)", hex,
		                  loc.pack);
	if (sc->rrec == NULL && (sc->rrec = malloc(HDR_LEN + ZSTD_COMPRESSBOUND(FB_BLOCK_SIZE))) == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return fb_err_errno(err, errno, path);
	n = pread(fd, sc->rrec, HDR_LEN + loc.stored_len, (off_t)loc.offset);
	close(fd);
	if (n != (ssize_t)(HDR_LEN + loc.stored_len) || get32(sc->rrec) != HDR_MAGIC ||
	    get32(sc->rrec + 4) != loc.stored_len || memcmp(sc->rrec + 16, h->b, FB_HASH_LEN) != 0)
		return fb_err_set(err, FB_RV_FAILED,
		                  "block %s: bad record header in %s at offset %llu", hex, path,
		                  (unsigned long long)loc.offset);
	/* The record as written (its header holds h): a damaged byte anywhere
	 * fails here, and an intact frame goes out without decoding. */
	if (loc.has_crc) {
		if (fb_crc32c(0, sc->rrec, HDR_LEN + loc.stored_len) != loc.crc)
			return fb_err_set(err, FB_RV_FAILED,
			                  "block %s fails verification: %s at offset %llu holds other "
			                  "data (its checksum does not match)",
			                  hex, path, (unsigned long long)loc.offset);
		if (z != NULL && (loc.flags & FB_STORE_ZSTD)) {
			memcpy(z, sc->rrec + HDR_LEN, loc.stored_len);
			*zlen = loc.stored_len;
			return FB_RV_OK;
		}
	}
	/* A block shorter than FB_BLOCK_SIZE (a disk's last) reads as zeros
	 * after its end; the rest of buf is written below. */
	memset((uint8_t *)buf + loc.raw_len, 0, FB_BLOCK_SIZE - loc.raw_len);
	if (loc.flags & FB_STORE_ZSTD) {
		size_t d;
		if (sc->dctx == NULL && (sc->dctx = ZSTD_createDCtx()) == NULL)
			return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
		d = ZSTD_decompressDCtx(sc->dctx, buf, FB_BLOCK_SIZE, sc->rrec + HDR_LEN, loc.stored_len);
		if (ZSTD_isError(d) || d != loc.raw_len)
			return fb_err_set(err, FB_RV_FAILED,
			                  "block %s: undecodable data in %s at offset %llu", hex, path,
			                  (unsigned long long)loc.offset);
	} else {
		memcpy(buf, sc->rrec + HDR_LEN, loc.raw_len);
	}
	if (!loc.has_crc)
		fb_hash_block(buf, FB_BLOCK_SIZE, FB_BLOCK_SIZE, &got);
	if (!loc.has_crc && memcmp(&got, h, sizeof(got)) != 0)
		return fb_err_set(err, FB_RV_FAILED,
		                  "block %s fails verification: %s at offset %llu holds other data",
		                  hex, path, (unsigned long long)loc.offset);
	if (z != NULL && (loc.flags & FB_STORE_ZSTD)) {
		memcpy(z, sc->rrec + HDR_LEN, loc.stored_len);
		*zlen = loc.stored_len;
	}
	return FB_RV_OK;
}

uint32_t
fb_store_get(fb_store *s, const fb_hash *h, void *buf, fb_err *err)
{
	return fb_store_get_packed(s, h, buf, NULL, NULL, err);
}
