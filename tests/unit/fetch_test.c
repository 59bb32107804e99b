/*
 * fetch_test.c - the fetch pipeline's ring (agent-replica/fetch.c): every
 * batch reaches the consumer once and in order, however the fetchers are
 * scheduled, with blocks the local store holds and zero blocks (nothing is
 * asked of the network: session_call fails the test if it is reached).
 * The fetchers outrun the consumer, so the ring is full all the time: the
 * case in which a fetcher woken for its batch's slot could lose the slot
 * to a later batch and the consumer would wait forever (seen replicating a
 * 2 GiB disk whose blocks the replica's store held; this test hung within
 * its first rounds before the fix).
 */
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "failback/db.h"
#include "failback/hash.h"
#include "failback/store.h"
#include "worker.h"

#define HELD    16   /* distinct blocks in the store */
#define BATCHES 2000 /* per round */
#define ROUNDS  4

/* The pipeline's only ties to the rest of the worker. */
uint32_t
session_call(session *s, int i, const char *method, const ProtobufCMessage *in,
             ProtobufCMessage **out, fb_err *err)
{
	(void)s;
	(void)i;
	(void)in;
	(void)out;
	fail_msg("%s went to the network: every block here is held or zero", method);
	return fb_err_set(err, FB_RV_FAILED, "no network here");
}

void
progress_emit(progress *p, int force)
{
	(void)p;
	(void)force;
}

void
progress_add_wire(progress *p, uint64_t bytes)
{
	(void)p;
	(void)bytes;
}

struct seen {
	uint64_t next;   /* the block the next batch must start with */
	uint8_t *blocks; /* the content of each held block */
	fb_hash  held[HELD];
	int      bad;
};

/* Checks the batch is the next one and holds the right bytes; now and
 * then gives the fetchers the CPU, so they run ahead in varying order. */
static uint32_t
consume(void *arg, const fetch_batch *b, fb_err *err)
{
	struct seen *sn = arg;

	if (b->items[0].block != sn->next)
		return fb_err_set(err, FB_RV_FAILED, "batch at block %llu, expected %llu",
		                  (unsigned long long)b->items[0].block,
		                  (unsigned long long)sn->next);
	for (size_t i = 0; i < b->n; i++) {
		uint64_t blk = b->items[i].block;

		if (blk % 3 == 0 &&
		    (!b->got[i] || memcmp(b->data + i * FB_BLOCK_SIZE,
		                          sn->blocks + (blk / 3 % HELD) * FB_BLOCK_SIZE,
		                          FB_BLOCK_SIZE) != 0))
			return fb_err_set(err, FB_RV_FAILED, "block %llu is not the store's",
			                  (unsigned long long)blk);
	}
	sn->next += b->n;
	if (sn->next % 7 == 0)
		sched_yield();
	return FB_RV_OK;
}

static void
every_batch_reaches_the_consumer_once_in_order(void **state)
{
	char         dir[200], path[300], cmd[300];
	fb_db       *db = NULL;
	fb_store    *st = NULL;
	fb_err       err;
	fb_store_loc loc[HELD];
	int          added;
	session      s;
	progress     pg;
	struct seen  sn;
	const char  *names[] = {"disk0", NULL};
	size_t       n     = (size_t)BATCHES * FB_WIRE_BATCH;
	fetch_item  *items = calloc(n, sizeof(*items));

	(void)state;
	assert_non_null(items);
	snprintf(dir, sizeof(dir), "/tmp/fb-fetch-test-%d", (int)getpid());
	assert_int_equal(mkdir(dir, 0700), 0);
	snprintf(path, sizeof(path), "%s/state.db", dir);
	assert_int_equal(fb_db_open(&db, path, &err), FB_RV_OK);
	snprintf(path, sizeof(path), "%s/blocks", dir);
	assert_int_equal(fb_store_open(&st, db, path, 0, &err), FB_RV_OK);
	memset(&sn, 0, sizeof(sn));
	assert_non_null(sn.blocks = malloc((size_t)HELD * FB_BLOCK_SIZE));
	for (size_t k = 0; k < HELD; k++) {
		uint8_t *b = sn.blocks + k * FB_BLOCK_SIZE;

		for (size_t j = 0; j < FB_BLOCK_SIZE; j++)
			b[j] = (uint8_t)(k * 131 + j * 7 + (j >> 9));
		fb_hash_block(b, FB_BLOCK_SIZE, FB_BLOCK_SIZE, &sn.held[k]);
		assert_int_equal(fb_store_append(st, &sn.held[k], b, FB_BLOCK_SIZE, &loc[k], &err),
		                 FB_RV_OK);
	}
	assert_int_equal(fb_store_sync(st, &err), FB_RV_OK);
	assert_int_equal(fb_db_begin(db, &err), FB_RV_OK);
	for (size_t k = 0; k < HELD; k++)
		assert_int_equal(fb_store_index_add(st, &sn.held[k], &loc[k], 1, &added, &err),
		                 FB_RV_OK);
	assert_int_equal(fb_db_commit(db, &err), FB_RV_OK);
	/* a third of the blocks held, the rest zero */
	for (size_t i = 0; i < n; i++) {
		items[i].block = i;
		items[i].h     = i % 3 == 0 ? sn.held[i / 3 % HELD] : *fb_hash_zero();
	}
	memset(&s, 0, sizeof(s));
	memset(&pg, 0, sizeof(pg));
	s.pg = &pg;
	for (int r = 0; r < ROUNDS; r++) {
		fetch_spec f = {&s, st, "vm", "rp", names, 0, 1, 0};

		sn.next = 0;
		assert_int_equal(fetch_run(&f, items, n, consume, &sn, &err), FB_RV_OK);
		assert_int_equal(sn.next, n);
	}
	fb_store_close(st);
	fb_db_close(db);
	free(sn.blocks);
	free(items);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(every_batch_reaches_the_consumer_once_in_order),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
