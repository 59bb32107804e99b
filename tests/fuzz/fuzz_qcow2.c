/*
 * fuzz_qcow2.c - a qcow2 file's metadata as qcow2.c reads it (the header,
 * its extensions, the bitmap directory, table and clusters): the input is
 * the whole file, in a memory file. Nothing may crash, leak or read out
 * of bounds; a bitmap that is read must have exactly one 0/1 byte per
 * granule of the virtual size, and a data file name without a NUL inside.
 */
#define _GNU_SOURCE /* memfd_create */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "failback/qcow2.h"

int    LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
size_t fuzz_builtin_seeds(uint8_t ***seeds, size_t **lens);

static int fd = -1;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fb_qcow2_bitmap b;
	char            why[512];
	uint64_t        want = 0;

	if (fd < 0 && (fd = memfd_create("qcow2", MFD_CLOEXEC)) < 0)
		abort();
	if (ftruncate(fd, 0) != 0 || (size > 0 && pwrite(fd, data, size, 0) != (ssize_t)size))
		abort();
	/* the size a caller expects: the header's own when it is at most 4 GiB
	 * (so that the bits are read), else 64 MiB */
	for (size_t i = 24; i < 32 && size >= 32; i++)
		want = want << 8 | data[i];
	if (size < 32 || want > (4ull << 30))
		want = 64ull << 20;
	if (fb_qcow2_read_fd(fd, "input", "fb-x", want, &b, why, sizeof(why)) != 0) {
		if (why[0] == '\0')
			abort(); /* an error always says why */
		return 0;
	}
	if (b.bits == NULL || b.granularity == 0 || b.size != want ||
	    b.nbits != b.size / b.granularity + (b.size % b.granularity != 0) ||
	    strlen(b.data_file) >= sizeof(b.data_file))
		abort();
	for (uint64_t i = 0; i < b.nbits; i++)
		if (b.bits[i] > 1)
			abort();
	free(b.bits);
	return 0;
}

size_t
fuzz_builtin_seeds(uint8_t ***seeds, size_t **lens)
{
	*seeds = NULL;
	*lens  = NULL;
	return 0;
}
