/*
 * fsops.h - the disk operations whose failure must never lose data, behind
 * one table so tests can fail any one of them (SQLite's way of testing
 * I/O errors and crashes). Production code calls fb_fs_*; a test swaps the
 * table with fb_fsops_set and counts or fails calls.
 *
 * "commit" is the point just before a SQLite COMMIT: failing it makes the
 * transaction roll back, as a crash before the commit would.
 */
#ifndef FAILBACK_FSOPS_H
#define FAILBACK_FSOPS_H

#include <sys/types.h>

typedef struct fb_fsops {
	ssize_t (*pwrite)(int fd, const void *buf, size_t n, off_t off);
	int (*fsync)(int fd);
	int (*rename)(const char *from, const char *to);
	int (*ftruncate)(int fd, off_t len);
	int (*commit)(void); /* 0 to go ahead, an errno to fail the commit */
	/* Added later; a table that leaves them NULL gets the real ones. */
	ssize_t (*pread)(int fd, void *buf, size_t n, off_t off);
	int (*punch)(int fd, off_t off, off_t len); /* make [off, off+len) a hole */
	int (*open)(const char *path, int flags, mode_t mode);
	int (*zero)(int fd, off_t off, off_t len); /* make [off, off+len) read as zeros */
} fb_fsops;

/* fb_fsops_set installs ops (NULL restores the real ones). Not thread-safe:
 * tests call it while nothing else runs. */
void fb_fsops_set(const fb_fsops *ops);

ssize_t fb_fs_pwrite(int fd, const void *buf, size_t n, off_t off); /* all n bytes or -1 */
int     fb_fs_fsync(int fd);
int     fb_fs_rename(const char *from, const char *to);
int     fb_fs_ftruncate(int fd, off_t len);
int     fb_fs_commit(void);
ssize_t fb_fs_pread(int fd, void *buf, size_t n, off_t off); /* all n bytes, or -1 (EIO at EOF) */
int     fb_fs_punch(int fd, off_t off, off_t len);           /* keeps the size */
int     fb_fs_open(const char *path, int flags, mode_t mode);
/* fb_fs_zero makes a range read as zeros, keeping the size: unwritten
 * extents where the filesystem has them (no data written, but the space
 * stays allocated: a block written by the VM is not given back), else a
 * hole, else zeros written. Unlike a hole punched on ext4 (0.2 to 2 ms a
 * block, reading the block group's bitmaps), it changes one extent
 * record (docs/STORAGE.md). */
int     fb_fs_zero(int fd, off_t off, off_t len);

/* fb_fs_start_writeback starts writing [off, off+len) of fd to the disk
 * and returns without waiting: a hint that makes the fsync that follows
 * shorter (the fsync alone makes the bytes durable). */
void fb_fs_start_writeback(int fd, off_t off, off_t len);

/* fb_fs_fsync_dir fsyncs the directory holding path (after a create or
 * rename in it). */
int fb_fs_fsync_dir(const char *path);

#endif
