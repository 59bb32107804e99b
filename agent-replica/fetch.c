/*
 * fetch.c - the fetch pipeline: FB_WORKER_FETCHERS connections pull
 * batches of blocks with ReadBlocks into a ring of RING slots, each block
 * checked against its leaf hash, while the calling thread consumes the
 * batches in order. Blocks the local store holds are copied on the fetcher
 * threads too (fill_local), so local copies run in parallel with pulls.
 * It knows no job type.
 *
 * Headway: while no fetcher makes progress for FB_STALL_MS, the caller
 * stops reporting, so a wedged connection goes quiet and the agent's
 * watchdog replaces the worker.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zstd.h>

#include "failback/clock.h"
#include "failback/log.h"
#include "failback/pb.h"
#include "worker.h"

#define BATCH FB_WIRE_BATCH
#define RING  (FB_WORKER_FETCHERS + 1) /* one per fetcher, one being consumed */

enum slot_state { SLOT_FREE, SLOT_FETCHING, SLOT_READY };

struct slot {
	enum slot_state state;
	size_t          batch;
	uint8_t        *data;   /* BATCH blocks */
	uint8_t        *packed; /* their frames as they came, when compressed */
	uint32_t        poff[BATCH], plen[BATCH];
	uint8_t         got[BATCH];
};

struct ring {
	const fetch_spec *f;
	const fetch_item *items;
	size_t            n, nbatches, next;
	struct slot       slots[RING];
	pthread_mutex_t   mtx;
	pthread_cond_t    cv; /* CLOCK_MONOTONIC */
	uint32_t          fatal;
	char              msg[FB_ERR_MSG_MAX];
	uint64_t          activity;
};

static size_t
batch_len(const struct ring *p, size_t b)
{
	return p->n - b * BATCH < BATCH ? p->n - b * BATCH : BATCH;
}

/* Fetches the items of batch b that must come over the wire. */
static uint32_t
pull_batch(struct ring *p, int ci, ZSTD_DCtx *dctx, size_t b, struct slot *s, fb_err *err)
{
	const fetch_spec             *f   = p->f;
	const fetch_item             *it  = p->items + b * BATCH;
	size_t                        len = batch_len(p, b);
	uint64_t                      idx[BATCH];
	size_t                        map[BATCH], nr = 0;
	Failback__ReadBlocksRequest   req = FAILBACK__READ_BLOCKS_REQUEST__INIT;
	Failback__ReadBlocksResponse *rsp = NULL;
	uint32_t                      rv;

	memset(s->got, 0, sizeof(s->got));
	memset(s->plen, 0, sizeof(s->plen));
	for (size_t i = 0; i < len; i++) {
		int present = 0;

		if (memcmp(&it[i].h, fb_hash_zero(), sizeof(fb_hash)) == 0)
			continue;
		/* One verified read both answers "held?" and copies; any failure
		 * other than "not held" is left for the consumer to report. */
		if (f->fill_local) {
			rv = fb_store_get(f->store, &it[i].h, s->data + i * FB_BLOCK_SIZE, err);
			if (rv == FB_RV_OK)
				s->got[i] = 1;
			if (rv != FB_RV_FILE_NOT_FOUND)
				continue;
		} else if (fb_store_contains(f->store, &it[i].h, &present, err) == FB_RV_OK &&
		           present) {
			continue;
		}
		idx[nr]   = it[i].block;
		map[nr++] = i;
	}
	if (nr == 0)
		return FB_RV_OK;
	req.recovery_point_identifier = (char *)f->rp;
	req.disk                      = (char *)f->disks[it[map[0]].disk];
	req.session_token             = (ProtobufCBinaryData){f->s->token_len, f->s->token};
	req.blocks                    = idx;
	req.n_blocks                  = nr;
	req.compress                  = f->compress;
	if ((rv = session_call(f->s, ci, "ReadBlocks", &req.base, (ProtobufCMessage **)&rsp, err)) !=
	    FB_RV_OK) {
		char why[FB_ERR_MSG_MAX];

		snprintf(why, sizeof(why), "%s", err->msg);
		return fb_err_set(err, rv, "VM %s disk %s blocks %llu-%llu: %s", f->vm, req.disk,
		                  (unsigned long long)idx[0], (unsigned long long)idx[nr - 1], why);
	}
	if (rsp->n_blocks != nr) {
		rv = fb_err_set(err, FB_RV_FAILED, "the primary returned %zu of %zu blocks",
		                rsp->n_blocks, nr);
		goto out;
	}
	for (size_t k = 0, used = 0; k < nr; k++) {
		const Failback__BlockData *bd  = rsp->blocks[k];
		uint8_t                   *dst = s->data + map[k] * FB_BLOCK_SIZE;

		progress_add_wire(f->s->pg, bd->data.len + 16);
		if ((rv = fb_pb_block_accept(bd, idx[k], &it[map[k]].h, dst, dctx, err)) != FB_RV_OK) {
			char why[FB_ERR_MSG_MAX];

			snprintf(why, sizeof(why), "%s", err->msg);
			rv = fb_err_set(err, rv, "VM %s disk %s block %llu %s", f->vm,
			                f->disks[it[map[k]].disk], (unsigned long long)idx[k], why);
			goto out;
		}
		s->got[map[k]] = 1;
		/* Kept for a store that takes frames as they are; a frame that
		 * saves nothing would not fit the batch's room, and is not kept. */
		if (bd->compressed && bd->data.len < FB_BLOCK_SIZE && s->packed != NULL) {
			memcpy(s->packed + used, bd->data.data, bd->data.len);
			s->poff[map[k]] = (uint32_t)used;
			s->plen[map[k]] = (uint32_t)bd->data.len;
			used += bd->data.len;
		}
	}
out:
	failback__read_blocks_response__free_unpacked(rsp, NULL);
	return rv;
}

struct fetcher_arg {
	struct ring *p;
	int          ci;
};

static void *
fetcher(void *arg)
{
	struct ring *p    = ((struct fetcher_arg *)arg)->p;
	int          ci   = ((struct fetcher_arg *)arg)->ci;
	ZSTD_DCtx   *dctx = ZSTD_createDCtx();

	for (;;) {
		struct slot *s;
		size_t       b;
		fb_err       err = {0};
		uint32_t     rv;

		pthread_mutex_lock(&p->mtx);
		if (dctx == NULL && !p->fatal) {
			p->fatal = FB_RV_OUT_OF_MEMORY;
			snprintf(p->msg, sizeof(p->msg), "out of memory for decompression");
			pthread_cond_broadcast(&p->cv);
		}
		/* The next batch is taken only once its slot is free, and the
		 * slot with it: a batch taken first and its slot waited for
		 * after could lose the slot to a later batch (b + RING, taken by
		 * a fetcher that ran while this one waited to be scheduled), and
		 * the consumer, waiting for b, would wait forever. */
		while (p->next < p->nbatches && p->slots[p->next % RING].state != SLOT_FREE &&
		       !p->fatal)
			pthread_cond_wait(&p->cv, &p->mtx);
		if (p->next >= p->nbatches || p->fatal) {
			pthread_mutex_unlock(&p->mtx);
			ZSTD_freeDCtx(dctx);
			return NULL;
		}
		b        = p->next++;
		s        = &p->slots[b % RING];
		s->state = SLOT_FETCHING;
		s->batch = b;
		pthread_mutex_unlock(&p->mtx);
		rv = pull_batch(p, ci, dctx, b, s, &err);
		pthread_mutex_lock(&p->mtx);
		p->activity = fb_clock_mono_ms();
		if (rv != FB_RV_OK && !p->fatal) {
			p->fatal = rv;
			snprintf(p->msg, sizeof(p->msg), "%s", err.msg);
		}
		s->state = SLOT_READY;
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mtx);
	}
}

/* Consumes the batches in order; returns the first error. */
static uint32_t
fetch_consume(struct ring *p, fetch_consume_fn consume, void *arg, fb_err *err)
{
	for (size_t b = 0; b < p->nbatches; b++) {
		struct slot *s = &p->slots[b % RING];
		fetch_batch  fb;
		uint32_t     rv;

		pthread_mutex_lock(&p->mtx);
		while (!(s->state == SLOT_READY && s->batch == b) && !p->fatal) {
			struct timespec ts;

			fb_clock_deadline(&ts, 100);
			pthread_cond_timedwait(&p->cv, &p->mtx, &ts);
			if (fb_clock_mono_ms() - p->activity < FB_STALL_MS) {
				pthread_mutex_unlock(&p->mtx);
				progress_emit(p->f->s->pg, 0);
				pthread_mutex_lock(&p->mtx);
			}
		}
		if (p->fatal) {
			rv = fb_err_set(err, p->fatal, "%s", p->msg);
			pthread_mutex_unlock(&p->mtx);
			return rv;
		}
		pthread_mutex_unlock(&p->mtx);
		fb = (fetch_batch){p->items + b * BATCH, batch_len(p, b), s->data, s->got,
		                   s->packed, s->poff, s->plen};
		rv = consume(arg, &fb, err);
		pthread_mutex_lock(&p->mtx);
		if (rv != FB_RV_OK && !p->fatal) {
			p->fatal = rv; /* stops the fetchers */
			snprintf(p->msg, sizeof(p->msg), "%s", err->msg);
		}
		s->state = SLOT_FREE;
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mtx);
		if (rv != FB_RV_OK)
			return rv;
	}
	return FB_RV_OK;
}

uint32_t
fetch_run(const fetch_spec *f, const fetch_item *items, size_t n, fetch_consume_fn consume,
          void *arg, fb_err *err)
{
	struct ring        p;
	pthread_t          t[FB_WORKER_FETCHERS];
	struct fetcher_arg fa[FB_WORKER_FETCHERS];
	int                nt = 0;
	uint32_t           rv = FB_RV_OK;

	memset(&p, 0, sizeof(p));
	p.f        = f;
	p.items    = items;
	p.n        = n;
	p.nbatches = (n + BATCH - 1) / BATCH;
	p.activity = fb_clock_mono_ms();
	/* a lookup in the store's index per item, on the fetchers, which
	 * take turns at the database: its pages are better read ahead */
	fb_store_expect(f->store, n);
	pthread_mutex_init(&p.mtx, NULL);
	fb_clock_cond_init(&p.cv);
	for (int i = 0; i < RING && rv == FB_RV_OK; i++)
		if ((p.slots[i].data = malloc((size_t)BATCH * FB_BLOCK_SIZE)) == NULL ||
		    (f->compress && f->keep_frames &&
		     (p.slots[i].packed = malloc((size_t)BATCH * FB_BLOCK_SIZE)) == NULL))
			rv = fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory for transfer buffers");
	while (rv == FB_RV_OK && nt < FB_WORKER_FETCHERS) {
		fa[nt] = (struct fetcher_arg){&p, nt};
		if (pthread_create(&t[nt], NULL, fetcher, &fa[nt]) != 0)
			rv = fb_err_set(err, FB_RV_OUT_OF_MEMORY, "cannot start a fetcher thread");
		else
			nt++;
	}
	if (rv != FB_RV_OK) {
		pthread_mutex_lock(&p.mtx);
		p.fatal = rv;
		pthread_cond_broadcast(&p.cv);
		pthread_mutex_unlock(&p.mtx);
	} else {
		rv = fetch_consume(&p, consume, arg, err);
	}
	for (int i = 0; i < nt; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < RING; i++) {
		free(p.slots[i].data);
		free(p.slots[i].packed);
	}
	pthread_cond_destroy(&p.cv);
	pthread_mutex_destroy(&p.mtx);
	return rv;
}

uint32_t
fetch_fill_local(fb_store *store, const fetch_batch *b, fb_err *err)
{
	const fetch_item *it   = b->items;
	uint8_t          *data = b->data;
	const uint8_t    *got  = b->got;

	for (size_t i = 0; i < b->n; i++) {
		uint32_t rv;

		if (got[i] || memcmp(&it[i].h, fb_hash_zero(), sizeof(fb_hash)) == 0)
			continue;
		if ((rv = fb_store_get(store, &it[i].h, data + i * FB_BLOCK_SIZE, err)) != FB_RV_OK) {
			char why[FB_ERR_MSG_MAX];

			snprintf(why, sizeof(why), "%s", err->msg);
			return fb_err_set(err, rv, "local copy of block %llu: %s",
			                  (unsigned long long)it[i].block, why);
		}
	}
	return FB_RV_OK;
}
