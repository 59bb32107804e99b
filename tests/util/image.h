/*
 * image.h - disk images of realistic content for tests and benchmarks:
 * random regions (incompressible), text-like regions (compressible) and
 * zero regions left as holes, in a pattern fixed by a seed.
 */
#ifndef FBT_IMAGE_H
#define FBT_IMAGE_H

#include <stddef.h>
#include <stdint.h>

/* fbt_image_make writes a sparse image of size bytes (a multiple of 4096).
 * Returns 0 on success. */
int fbt_image_make(const char *path, uint64_t size, uint32_t seed);

/* fbt_image_mutate overwrites count random 64 KiB blocks with new random
 * data (seeded), and returns the number changed, or -1. */
int fbt_image_mutate(const char *path, uint64_t count, uint32_t seed);

/* fbt_file_sha256 writes the SHA-256 of a file's contents as hex (65 bytes). */
int fbt_file_sha256(const char *path, char *hex);

/* fbt_qemu_dir checks that QEMU's tools are installed (saying so for test
 * when not) and makes a private directory under $TMPDIR (or /tmp) in dir.
 * Returns 0 on success. */
int fbt_qemu_dir(const char *test, char *dir, size_t cap);

#endif
