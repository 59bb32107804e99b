/*
 * merkle_test.c - the tree's shape and hashes: the root names the content,
 * any leaf change reaches the root, and child ranges cover every node once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "failback/merkle.h"

static fb_hash *
leaves_of(uint64_t n)
{
	fb_hash *l = calloc(n, sizeof(*l));

	for (uint64_t i = 0; i < n; i++)
		fb_hash_block(&i, sizeof(i), FB_BLOCK_SIZE, &l[i]);
	return l;
}

static void
one_leaf_root_is_a_node_over_that_leaf(void **state)
{
	fb_hash *l = leaves_of(1), want, root;
	fb_err   err;

	(void)state;
	fb_hash_node(l, 1, &want);
	assert_int_equal(fb_merkle_root_of(l, 1, &root, &err), FB_RV_OK);
	assert_memory_equal(&root, &want, sizeof(root));
	free(l);
}

static void
levels_and_widths_follow_the_fanout(void **state)
{
	fb_hash   *l = leaves_of(65);
	fb_merkle *t;
	fb_err     err;

	(void)state;
	assert_int_equal(fb_merkle_build(&t, l, 65, &err), FB_RV_OK);
	assert_int_equal(fb_merkle_levels(t), 4); /* 65 → 9 → 2 → 1 */
	assert_int_equal(fb_merkle_width(t, 1), 9);
	assert_int_equal(fb_merkle_width(t, 2), 2);
	assert_int_equal(fb_merkle_width(t, 3), 1);
	{
		uint64_t first;
		unsigned count;
		fb_hash  h;

		fb_merkle_children(t, 1, 8, &first, &count); /* the ragged right edge */
		assert_int_equal(first, 64);
		assert_int_equal(count, 1);
		fb_hash_node(fb_merkle_node(t, 0, 64), 1, &h);
		assert_memory_equal(&h, fb_merkle_node(t, 1, 8), sizeof(h));
	}
	fb_merkle_free(t);
	free(l);
}

static void
every_single_leaf_change_changes_the_root(void **state)
{
	fb_hash *l = leaves_of(100), base, r;
	fb_err   err;

	(void)state;
	assert_int_equal(fb_merkle_root_of(l, 100, &base, &err), FB_RV_OK);
	for (int i = 0; i < 100; i++) {
		l[i].b[7] ^= 1;
		assert_int_equal(fb_merkle_root_of(l, 100, &r, &err), FB_RV_OK);
		assert_memory_not_equal(&r, &base, sizeof(r));
		l[i].b[7] ^= 1;
	}
	assert_int_equal(fb_merkle_root_of(l, 100, &r, &err), FB_RV_OK);
	assert_memory_equal(&r, &base, sizeof(r));
	free(l);
}

static void
zero_leaves_is_an_error(void **state)
{
	fb_merkle *t = NULL;
	fb_err     err;

	(void)state;
	assert_int_equal(fb_merkle_build(&t, NULL, 0, &err), FB_RV_INVALID_PARAMETER);
	assert_null(t);
}

static void
short_last_block_hashes_as_zero_padded(void **state)
{
	uint8_t full[FB_BLOCK_SIZE] = {0};
	fb_hash a, b;

	(void)state;
	memcpy(full, "tail", 4);
	fb_hash_block(full, 4, FB_BLOCK_SIZE, &a);
	fb_hash_block(full, FB_BLOCK_SIZE, FB_BLOCK_SIZE, &b);
	assert_memory_equal(&a, &b, sizeof(a));
	fb_hash_block(NULL, 0, FB_BLOCK_SIZE, &a);
	assert_memory_equal(&a, fb_hash_zero(), sizeof(a));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(one_leaf_root_is_a_node_over_that_leaf),
	    cmocka_unit_test(levels_and_widths_follow_the_fanout),
	    cmocka_unit_test(every_single_leaf_change_changes_the_root),
	    cmocka_unit_test(zero_leaves_is_an_error),
	    cmocka_unit_test(short_last_block_hashes_as_zero_padded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
