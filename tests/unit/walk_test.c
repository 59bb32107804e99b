/*
 * walk_test.c - the top-down comparison (walk.h) on random trees: it finds
 * exactly the leaves that differ, assembles the target's leaves, refuses
 * a feeder that lies, and exchanges at most fan-out x interior levels x
 * changed leaves hashes (DESIGN §3's cost claim).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "failback/walk.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t
next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static fb_hash *
random_leaves(uint64_t n)
{
	fb_hash *l = malloc(n * sizeof(*l));

	for (uint64_t i = 0; i < n; i++) {
		uint64_t v = next_rand();
		fb_hash_block(&v, sizeof(v), FB_BLOCK_SIZE, &l[i]);
	}
	return l;
}

/* Plays the primary: answers every next from the target tree. Returns the
 * hashes exchanged. */
static uint64_t
drive(fb_walk *w, const fb_merkle *target)
{
	fb_walk_ref refs[64];
	fb_hash    *buf = malloc(64 * FB_MERKLE_FANOUT * sizeof(fb_hash));
	fb_err      err;
	size_t      k;
	uint64_t    total = 0;

	for (;;) {
		size_t nh = 0;

		assert_int_equal(fb_walk_next(w, refs, 64, &k, &err), FB_RV_OK);
		if (k == 0)
			break;
		for (size_t i = 0; i < k; i++) {
			uint64_t first;
			unsigned cnt;

			fb_merkle_children(target, refs[i].level, refs[i].index, &first, &cnt);
			for (unsigned c = 0; c < cnt; c++)
				buf[nh++] = *fb_merkle_node(target, refs[i].level - 1, first + c);
		}
		assert_int_equal(nh, fb_walk_expected(w));
		assert_int_equal(fb_walk_feed(w, buf, nh, &err), FB_RV_OK);
		total += nh;
	}
	free(buf);
	assert_int_equal(total, fb_walk_hashes(w));
	return total;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void
finds_exactly_the_changed_leaves_within_the_cost_bound(void **state)
{
	static const uint64_t sizes[] = {1, 2, 7, 8, 9, 63, 64, 65, 511, 4097, 20000};

	(void)state;
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		for (int round = 0; round < 6; round++) {
			uint64_t      n = sizes[s];
			fb_hash      *local = random_leaves(n), *target = malloc(n * sizeof(fb_hash));
			uint64_t      c = round == 0 ? 0 : 1 + next_rand() % (n < 40 ? n : 40);
			uint64_t     *changed = calloc(c + 1, sizeof(uint64_t));
			uint64_t      nchanged = 0;
			fb_merkle    *lt, *tt;
			fb_walk      *w;
			fb_walk_diff *diffs;
			fb_hash      *leaves;
			size_t        nd;
			fb_err        err;
			unsigned      interior = fb_walk_levels(n, NULL) - 1;
			uint64_t      hashes;

			memcpy(target, local, n * sizeof(fb_hash));
			for (uint64_t i = 0; i < c; i++) {
				uint64_t b = next_rand() % n, v = next_rand();
				fb_hash_block(&v, sizeof(v), FB_BLOCK_SIZE, &target[b]);
			}
			for (uint64_t i = 0; i < n; i++)
				if (memcmp(&target[i], &local[i], sizeof(fb_hash)) != 0)
					changed[nchanged++] = i;
			assert_int_equal(fb_merkle_build(&lt, local, n, &err), FB_RV_OK);
			assert_int_equal(fb_merkle_build(&tt, target, n, &err), FB_RV_OK);
			assert_int_equal(fb_walk_open(&w, n, fb_merkle_root(tt), lt, 1, &err),
			                 FB_RV_OK);
			hashes = drive(w, tt);
			assert_int_equal(fb_walk_finish(w, &diffs, &nd, &leaves, &err), FB_RV_OK);
			/* exactly the changed leaves, in block order, with the target's hashes */
			assert_int_equal(nd, nchanged);
			qsort(changed, nchanged, sizeof(uint64_t), cmp_u64);
			for (size_t i = 0; i < nd; i++) {
				assert_int_equal(diffs[i].block, changed[i]);
				assert_memory_equal(&diffs[i].h, &target[changed[i]], sizeof(fb_hash));
			}
			assert_memory_equal(leaves, target, n * sizeof(fb_hash));
			/* the cost claim */
			assert_true(hashes <= (uint64_t)FB_MERKLE_FANOUT * interior * nchanged);
			free(diffs);
			free(leaves);
			fb_walk_close(w);
			fb_merkle_free(lt);
			fb_merkle_free(tt);
			free(local);
			free(target);
			free(changed);
		}
	}
}

static void
without_a_local_tree_every_leaf_differs(void **state)
{
	uint64_t      n = 100;
	fb_hash      *target = random_leaves(n), *leaves;
	fb_merkle    *tt;
	fb_walk      *w;
	fb_walk_diff *diffs;
	size_t        nd;
	fb_err        err;

	(void)state;
	assert_int_equal(fb_merkle_build(&tt, target, n, &err), FB_RV_OK);
	assert_int_equal(fb_walk_open(&w, n, fb_merkle_root(tt), NULL, 1, &err), FB_RV_OK);
	drive(w, tt);
	assert_int_equal(fb_walk_finish(w, &diffs, &nd, &leaves, &err), FB_RV_OK);
	assert_int_equal(nd, n);
	assert_memory_equal(leaves, target, n * sizeof(fb_hash));
	free(diffs);
	free(leaves);
	fb_walk_close(w);
	fb_merkle_free(tt);
	free(target);
}

static void
a_feed_of_the_wrong_length_is_refused(void **state)
{
	uint64_t    n = 64;
	fb_hash    *local = random_leaves(n), *target = random_leaves(n), buf[8];
	fb_merkle  *lt, *tt;
	fb_walk    *w;
	fb_walk_ref refs[4];
	size_t      k;
	fb_err      err;

	(void)state;
	assert_int_equal(fb_merkle_build(&lt, local, n, &err), FB_RV_OK);
	assert_int_equal(fb_merkle_build(&tt, target, n, &err), FB_RV_OK);
	assert_int_equal(fb_walk_open(&w, n, fb_merkle_root(tt), lt, 0, &err), FB_RV_OK);
	assert_int_equal(fb_walk_next(w, refs, 4, &k, &err), FB_RV_OK);
	assert_int_equal(k, 1);
	assert_int_equal(fb_walk_expected(w), 8); /* 64 leaves → 8 → 1: the root has 8 children */
	memset(buf, 0, sizeof(buf));
	assert_int_equal(fb_walk_feed(w, buf, 0, &err), FB_RV_INVALID_PARAMETER);
	assert_int_equal(fb_walk_feed(w, buf, 7, &err), FB_RV_INVALID_PARAMETER);
	/* next without a feed is refused too */
	assert_int_equal(fb_walk_next(w, refs, 4, &k, &err), FB_RV_INVALID_STATE);
	fb_walk_close(w);
	fb_merkle_free(lt);
	fb_merkle_free(tt);
	free(local);
	free(target);
}

static void
leaves_that_do_not_give_the_root_fail(void **state)
{
	uint64_t      n = 9;
	fb_hash      *target = random_leaves(n), bogus, *leaves;
	fb_merkle    *tt;
	fb_walk      *w;
	fb_walk_diff *diffs;
	fb_walk_ref   refs[8];
	fb_hash       buf[64];
	size_t        k, nd;
	fb_err        err;

	(void)state;
	memset(&bogus, 0x5a, sizeof(bogus));
	assert_int_equal(fb_merkle_build(&tt, target, n, &err), FB_RV_OK);
	/* the walk is told a root the tree does not have */
	assert_int_equal(fb_walk_open(&w, n, &bogus, NULL, 1, &err), FB_RV_OK);
	for (;;) {
		size_t nh = 0;

		assert_int_equal(fb_walk_next(w, refs, 8, &k, &err), FB_RV_OK);
		if (k == 0)
			break;
		for (size_t i = 0; i < k; i++) {
			uint64_t first;
			unsigned cnt;
			fb_merkle_children(tt, refs[i].level, refs[i].index, &first, &cnt);
			for (unsigned c = 0; c < cnt; c++)
				buf[nh++] = *fb_merkle_node(tt, refs[i].level - 1, first + c);
		}
		assert_int_equal(fb_walk_feed(w, buf, nh, &err), FB_RV_OK);
	}
	assert_int_equal(fb_walk_finish(w, &diffs, &nd, &leaves, &err), FB_RV_FAILED);
	fb_walk_close(w);
	fb_merkle_free(tt);
	free(target);
}

static void
a_local_tree_of_another_size_is_refused(void **state)
{
	fb_hash   *l = random_leaves(10), root;
	fb_merkle *lt;
	fb_walk   *w;
	fb_err     err;

	(void)state;
	memset(&root, 0, sizeof(root));
	assert_int_equal(fb_merkle_build(&lt, l, 10, &err), FB_RV_OK);
	assert_int_equal(fb_walk_open(&w, 11, &root, lt, 0, &err), FB_RV_INVALID_PARAMETER);
	assert_int_equal(fb_walk_open(&w, 0, &root, NULL, 0, &err), FB_RV_INVALID_PARAMETER);
	fb_merkle_free(lt);
	free(l);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(finds_exactly_the_changed_leaves_within_the_cost_bound),
	    cmocka_unit_test(without_a_local_tree_every_leaf_differs),
	    cmocka_unit_test(a_feed_of_the_wrong_length_is_refused),
	    cmocka_unit_test(leaves_that_do_not_give_the_root_fail),
	    cmocka_unit_test(a_local_tree_of_another_size_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
