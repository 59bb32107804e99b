/*
 * image_test.c - images read through qemu-nbd (image.h) when the server
 * dies as it starts: one killed before it serves has taken nothing and is
 * started again (up to FB_IMAGE_RESTARTS times), the read that follows is
 * exact; one that keeps being killed, or that exits with an error of its
 * own, fails naming the image and its format.
 *
 * A qemu-nbd found first on PATH stands in front of the real one: it
 * counts its starts and, while the count is below FBT_NBD_KILLS, kills
 * itself with SIGKILL, before its socket exists (FBT_NBD_MODE=early) or
 * after a file appears at the socket's path (late: the client sees
 * "connection refused"); FBT_NBD_MODE=exit makes it exit 1 with a message
 * instead. After that it runs /usr/bin/qemu-nbd with the same arguments.
 * The image is a real qcow2 image written by qemu-io.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "failback/image.h"
#include "image.h"

#define MIB (1024u * 1024u)

static char dir[256], img[300], counter[300];

static int
sh(const char *cmd)
{
	int st = system(cmd);

	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int
starts(void)
{
	FILE *f = fopen(counter, "r");
	int   n = 0;

	if (f != NULL) {
		if (fscanf(f, "%d", &n) != 1)
			n = 0;
		fclose(f);
	}
	return n;
}

static void
stand_in(const char *mode, int kills)
{
	char v[16];

	snprintf(v, sizeof(v), "%d", kills);
	setenv("FBT_NBD_MODE", mode, 1);
	setenv("FBT_NBD_KILLS", v, 1);
	unlink(counter);
}

static int
setup(void **state)
{
	char  path[600], cmd[1200];
	FILE *f;

	(void)state;
	if (fbt_qemu_dir("image_test", dir, sizeof(dir)) != 0)
		return -1;
	snprintf(img, sizeof(img), "%s/disk.qcow2", dir);
	snprintf(counter, sizeof(counter), "%s/starts", dir);
	snprintf(path, sizeof(path), "%s/qemu-nbd", dir);
	if ((f = fopen(path, "w")) == NULL)
		return -1;
	fprintf(f, "#!/bin/sh\n"
	           "n=$(cat '%s' 2>/dev/null || echo 0)\n"
	           "echo $((n + 1)) > '%s'\n"
	           "if [ \"$n\" -lt \"$FBT_NBD_KILLS\" ]; then\n"
	           "  sock=; prev=\n"
	           "  for a in \"$@\"; do [ \"$prev\" = -k ] && sock=$a; prev=$a; done\n"
	           "  case $FBT_NBD_MODE in\n"
	           "  late) : > \"$sock\"; kill -9 $$ ;;\n"
	           "  exit) echo 'qemu-nbd: cannot open the image here' >&2; exit 1 ;;\n"
	           "  *) kill -9 $$ ;;\n"
	           "  esac\n"
	           "fi\n"
	           "exec /usr/bin/qemu-nbd \"$@\"\n",
	        counter, counter);
	fclose(f);
	if (chmod(path, 0755) != 0)
		return -1;
	snprintf(path, sizeof(path), "%s:%s", dir, getenv("PATH") != NULL ? getenv("PATH") : "");
	setenv("PATH", path, 1);
	snprintf(cmd, sizeof(cmd),
	         "qemu-img create -q -f qcow2 '%s' 4M && "
	         "qemu-io -f qcow2 -c 'write -P 0x5a 1M 64k' '%s' >/dev/null",
	         img, img);
	return sh(cmd) == 0 ? 0 : -1;
}

static int
teardown(void **state)
{
	char cmd[400];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return sh(cmd) == 0 ? 0 : -1;
}

/* The image opens and reads exactly what qemu-io wrote. */
static void
reads_exactly(void)
{
	static uint8_t buf[2 * MIB];
	fb_image      *im = NULL;
	fb_err         err = {0};
	uint64_t       nread = 0;

	if (fb_image_open(img, "qcow2", &im, &err) != FB_RV_OK)
		fail_msg("open: %s", err.msg);
	assert_int_equal(fb_image_size(im), 4 * MIB);
	assert_int_equal(fb_image_read(im, buf, 0, sizeof(buf), &nread, &err), FB_RV_OK);
	for (size_t i = 0; i < sizeof(buf); i++)
		if (buf[i] != (i >= MIB && i < MIB + 65536 ? 0x5a : 0))
			fail_msg("byte %zu reads %#x", i, buf[i]);
	fb_image_close(im);
}

static void
a_server_killed_before_its_socket_exists_is_started_again(void **state)
{
	(void)state;
	stand_in("early", 1);
	reads_exactly();
	assert_int_equal(starts(), 2);
}

static void
a_server_killed_after_its_socket_appears_is_started_again(void **state)
{
	(void)state;
	stand_in("late", 2);
	reads_exactly();
	assert_int_equal(starts(), 3);
}

static void
a_server_killed_at_every_start_fails_naming_the_image(void **state)
{
	fb_image *im = NULL;
	fb_err    err = {0};

	(void)state;
	stand_in("early", 100);
	assert_int_equal(fb_image_open(img, "qcow2", &im, &err), FB_RV_FAILED);
	assert_null(im);
	assert_non_null(strstr(err.msg, img));
	assert_non_null(strstr(err.msg, "(qcow2)"));
	assert_non_null(strstr(err.msg, "killed by signal 9"));
	assert_int_equal(starts(), 1 + FB_IMAGE_RESTARTS);
}

static void
a_server_that_exits_with_an_error_is_not_started_again(void **state)
{
	fb_image *im = NULL;
	fb_err    err = {0};

	(void)state;
	stand_in("exit", 100);
	assert_int_equal(fb_image_open(img, "qcow2", &im, &err), FB_RV_FAILED);
	assert_null(im);
	assert_non_null(strstr(err.msg, img));
	assert_non_null(strstr(err.msg, "cannot open the image here"));
	assert_int_equal(starts(), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(a_server_killed_before_its_socket_exists_is_started_again),
	    cmocka_unit_test(a_server_killed_after_its_socket_appears_is_started_again),
	    cmocka_unit_test(a_server_killed_at_every_start_fails_naming_the_image),
	    cmocka_unit_test(a_server_that_exits_with_an_error_is_not_started_again),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
