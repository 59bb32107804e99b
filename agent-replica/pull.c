/*
 * pull.c - how a worker gets data from the primary: calls with retries, the
 * top-down walk of a recovery point's Merkle tree (descending only where
 * the hashes differ, so the hashes exchanged are O(changed blocks x depth)),
 * and the fetch pipeline: FB_WORKER_FETCHERS connections pull batches of
 * blocks with ReadBlocks, each block checked against its leaf hash, while
 * the caller consumes the batches in order.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zstd.h>

#include "failback/clock.h"
#include "failback/log.h"
#include "resync.pb-c.h"
#include "worker.h"

#define BATCH        32   /* blocks per ReadBlocks and per durable apply step */
#define RING         6
#define CALL_TIMEOUT 20000
#define TREE_CHUNK   4096
#define STALL_MS     25000

/* One call with retries on a lost or silent primary. Thread-safe. */
uint32_t
pull_call(worker *w, int i, const char *method, const ProtobufCMessage *in, ProtobufCMessage **out,
       fb_err *err)
{
	uint32_t rv = FB_RV_NOT_AVAILABLE;

	for (int attempt = 0; attempt < FB_WORKER_RETRIES; attempt++) {
		rv = fb_rpc_client_call(w->cli[i], &failback__resync_source__descriptor, method, in,
		                        out, CALL_TIMEOUT, err);
		if (rv != FB_RV_NOT_AVAILABLE && rv != FB_RV_TIMEOUT)
			return rv;
		fb_log_info("FB6003", "job %s: %s: %s; retrying", w->job, method, err->msg);
		usleep(attempt < 3 ? (useconds_t)(250000u << attempt) : 2000000u);
	}
	return rv;
}

/* --- the top-down walk --- */

static unsigned
tree_levels(uint64_t n, uint64_t *width)
{
	unsigned L = 0;

	width[L++] = n;
	do {
		width[L] = (width[L - 1] + FB_MERKLE_FANOUT - 1) / FB_MERKLE_FANOUT;
		L++;
	} while (width[L - 1] > 1);
	return L;
}


/*
 * Walks the target tree of rp/disk against local (may be NULL: everything
 * differs). Fills target_leaves (may be NULL) and the differing leaves.
 */
void
pull_walk(worker *w, const char *rp, const char *disk, uint64_t n, const fb_hash *target_root,
       const fb_merkle *local, fb_hash *target_leaves, struct diff **diffs, size_t *ndiffs)
{
	uint64_t  width[40], *frontier, *next, nf = 1, nn, span = 1;
	unsigned  L = tree_levels(n, width);
	size_t    cap = 64;
	fb_err    err = {0};

	*ndiffs = 0;
	*diffs  = malloc(cap * sizeof(**diffs));
	if (local != NULL && memcmp(fb_merkle_root(local), target_root, sizeof(fb_hash)) == 0) {
		if (target_leaves != NULL)
			for (uint64_t i = 0; i < n; i++)
				target_leaves[i] = *fb_merkle_node(local, 0, i);
		return;
	}
	for (unsigned k = 1; k < L - 1; k++)
		span *= FB_MERKLE_FANOUT;
	frontier    = malloc(sizeof(uint64_t));
	frontier[0] = 0;
	for (unsigned level = L - 1; level >= 1; level--) {
		next = malloc((nf * FB_MERKLE_FANOUT + 1) * sizeof(uint64_t));
		nn   = 0;
		for (uint64_t f0 = 0; f0 < nf; f0 += TREE_CHUNK) {
			Failback__GetTreeNodesRequest  req = FAILBACK__GET_TREE_NODES_REQUEST__INIT;
			Failback__GetTreeNodesResponse *rsp = NULL;
			Failback__TreeNodeRef          *refs, **prefs;
			uint64_t                        cnt = nf - f0 < TREE_CHUNK ? nf - f0 : TREE_CHUNK;
			size_t                          hi  = 0;

			refs  = calloc(cnt, sizeof(*refs));
			prefs = calloc(cnt, sizeof(*prefs));
			for (uint64_t i = 0; i < cnt; i++) {
				failback__tree_node_ref__init(&refs[i]);
				refs[i].level = level;
				refs[i].index = frontier[f0 + i];
				prefs[i]      = &refs[i];
			}
			req.recovery_point_identifier = (char *)rp;
			req.disk                      = (char *)disk;
			req.nodes                     = prefs;
			req.n_nodes                   = cnt;
			if (pull_call(w, 0, "GetTreeNodes", &req.base, (ProtobufCMessage **)&rsp, &err) !=
			    FB_RV_OK)
				worker_die(w, err.rv, "comparing %s: %s", disk, err.msg);
			w->wire += failback__get_tree_nodes_request__get_packed_size(&req) +
			           rsp->hashes.len;
			for (uint64_t i = 0; i < cnt; i++) {
				uint64_t first = frontier[f0 + i] * FB_MERKLE_FANOUT;
				uint64_t kids  = width[level - 1] - first < FB_MERKLE_FANOUT
				                     ? width[level - 1] - first
				                     : FB_MERKLE_FANOUT;

				for (uint64_t c = 0; c < kids; c++, hi++) {
					fb_hash h;
					int     same;

					if ((hi + 1) * sizeof(fb_hash) > rsp->hashes.len)
						worker_die(w, FB_RV_FAILED, "short tree reply for %s", disk);
					memcpy(&h, rsp->hashes.data + hi * sizeof(fb_hash), sizeof(h));
					same = local != NULL &&
					       memcmp(&h, fb_merkle_node(local, level - 1, first + c),
					              sizeof(h)) == 0;
					if (same) {
						if (target_leaves != NULL) {
							uint64_t s = level - 1 == 0 ? 1 : span;
							uint64_t a = (first + c) * s, b = a + s;
							for (uint64_t x = a; x < b && x < n; x++)
								target_leaves[x] = *fb_merkle_node(local, 0, x);
						}
						continue;
					}
					if (level - 1 > 0) {
						next[nn++] = first + c;
						continue;
					}
					if (target_leaves != NULL)
						target_leaves[first + c] = h;
					if (*ndiffs == cap)
						*diffs = realloc(*diffs, (cap *= 2) * sizeof(**diffs));
					(*diffs)[(*ndiffs)++] = (struct diff){first + c, h};
				}
			}
			failback__get_tree_nodes_response__free_unpacked(rsp, NULL);
			free(refs);
			free(prefs);
			worker_emit(w, 0);
		}
		free(frontier);
		frontier = next;
		nf       = nn;
		span /= FB_MERKLE_FANOUT;
		if (span == 0)
			span = 1;
		if (level == 1)
			break;
	}
	free(frontier);
	if (target_leaves != NULL) {
		fb_hash root;
		if (fb_merkle_root_of(target_leaves, n, &root, &err) != FB_RV_OK ||
		    memcmp(&root, target_root, sizeof(root)) != 0)
			worker_die(w, FB_RV_FAILED, "the primary's tree for %s does not give its root", disk);
	}
}

/* --- the fetch pipeline --- */


struct slot {
	int      state; /* 0 free, 1 fetching, 2 ready */
	size_t   batch;
	uint8_t *data; /* BATCH blocks */
	uint8_t  got[BATCH];
};


struct pipe {
	worker            *w;
	const char        *rp;
	const char *const *disks;
	const struct item *items;
	size_t             n, nbatches, next, consumed;
	struct slot        ring[RING];
	pthread_mutex_t    mtx;
	pthread_cond_t     cv;
	uint32_t           fatal;
	char               msg[FB_ERR_MSG_MAX];
	uint64_t           activity;
	int                compress;
	int                local; /* fill store-held blocks in the fetchers */
};

static size_t
batch_start(const struct pipe *p, size_t b)
{
	(void)p;
	return b * BATCH;
}

static size_t
batch_len(const struct pipe *p, size_t b)
{
	return p->n - b * BATCH < BATCH ? p->n - b * BATCH : BATCH;
}

/* Fetches the items of one batch that must come over the wire. */
static uint32_t
fetch_batch(struct pipe *p, int ci, size_t b, struct slot *s, fb_err *err)
{
	worker                      *w   = p->w;
	const struct item           *it  = p->items + batch_start(p, b);
	size_t                       len = batch_len(p, b);
	uint64_t                     idx[BATCH];
	size_t                       map[BATCH], nr = 0;
	Failback__ReadBlocksRequest  req = FAILBACK__READ_BLOCKS_REQUEST__INIT;
	Failback__ReadBlocksResponse *rsp = NULL;
	static __thread ZSTD_DCtx   *dctx;

	memset(s->got, 0, sizeof(s->got));
	for (size_t i = 0; i < len; i++) {
		int present = 0;

		if (memcmp(&it[i].h, fb_hash_zero(), sizeof(fb_hash)) == 0)
			continue;
		/* Blocks the local store holds are copied here, on the fetcher
		 * threads, so local copies run in parallel too. One verified read
		 * both answers "held?" and copies; any failure other than "not
		 * held" is left for the consumer to report. */
		if (p->local) {
			uint32_t rv = fb_store_get(w->store, &it[i].h, s->data + i * FB_BLOCK_SIZE, err);

			if (rv == FB_RV_OK)
				s->got[i] = 1;
			if (rv != FB_RV_FILE_NOT_FOUND)
				continue;
		} else if (fb_store_contains(w->store, &it[i].h, &present, err) == FB_RV_OK &&
		           present) {
			continue;
		}
		/* A batch never mixes disks (the caller cuts at disk boundaries). */
		idx[nr]   = it[i].block;
		map[nr++] = i;
	}
	if (nr == 0)
		return FB_RV_OK;
	req.recovery_point_identifier = (char *)p->rp;
	req.disk                      = (char *)p->disks[it[map[0]].disk];
	req.blocks                    = idx;
	req.n_blocks                  = nr;
	req.compress                  = p->compress;
	if (pull_call(w, ci, "ReadBlocks", &req.base, (ProtobufCMessage **)&rsp, err) != FB_RV_OK) {
		char why[FB_ERR_MSG_MAX];

		snprintf(why, sizeof(why), "%s", err->msg);
		return fb_err_set(err, err->rv, "VM %s disk %s blocks %llu-%llu: %s", w->params->vm,
		                  req.disk, (unsigned long long)idx[0],
		                  (unsigned long long)idx[nr - 1], why);
	}
	if (rsp->n_blocks != nr) {
		failback__read_blocks_response__free_unpacked(rsp, NULL);
		return fb_err_set(err, FB_RV_FAILED, "the primary returned %zu of %zu blocks",
		                  rsp->n_blocks, nr);
	}
	if (dctx == NULL)
		dctx = ZSTD_createDCtx();
	for (size_t k = 0; k < nr; k++) {
		const Failback__BlockData *bd  = rsp->blocks[k];
		uint8_t                   *dst = s->data + map[k] * FB_BLOCK_SIZE;
		fb_hash                    h;

		__atomic_add_fetch(&w->wire, bd->data.len + 16, __ATOMIC_RELAXED);
		memset(dst, 0, FB_BLOCK_SIZE);
		if (bd->index != idx[k]) {
			failback__read_blocks_response__free_unpacked(rsp, NULL);
			return fb_err_set(err, FB_RV_FAILED, "the primary answered for block %llu",
			                  (unsigned long long)bd->index);
		}
		if (bd->compressed) {
			size_t d = ZSTD_decompressDCtx(dctx, dst, FB_BLOCK_SIZE, bd->data.data,
			                               bd->data.len);
			if (ZSTD_isError(d))
				memset(dst, 0xff, 1);
		} else if (!bd->zero) {
			memcpy(dst, bd->data.data, bd->data.len < FB_BLOCK_SIZE ? bd->data.len
			                                                        : FB_BLOCK_SIZE);
		}
		fb_hash_block(dst, FB_BLOCK_SIZE, FB_BLOCK_SIZE, &h);
		if (memcmp(&h, &p->items[batch_start(p, b) + map[k]].h, sizeof(h)) != 0) {
			failback__read_blocks_response__free_unpacked(rsp, NULL);
			return fb_err_set(err, FB_RV_FAILED,
			                  "VM %s disk %s block %llu failed verification: the primary "
			                  "sent data that does not match its leaf hash",
			                  w->params->vm, p->disks[it[map[k]].disk],
			                  (unsigned long long)idx[k]);
		}
		s->got[map[k]] = 1;
	}
	failback__read_blocks_response__free_unpacked(rsp, NULL);
	return FB_RV_OK;
}

struct fetcher_arg {
	struct pipe *p;
	int          ci;
};

static void *
fetcher(void *arg)
{
	struct pipe *p  = ((struct fetcher_arg *)arg)->p;
	int          ci = ((struct fetcher_arg *)arg)->ci;

	for (;;) {
		struct slot *s;
		size_t       b;
		fb_err       err = {0};
		uint32_t     rv;

		pthread_mutex_lock(&p->mtx);
		if (p->next >= p->nbatches || p->fatal) {
			pthread_mutex_unlock(&p->mtx);
			return NULL;
		}
		b = p->next++;
		s = &p->ring[b % RING];
		while (s->state != 0 && !p->fatal)
			pthread_cond_wait(&p->cv, &p->mtx);
		s->state = 1;
		s->batch = b;
		pthread_mutex_unlock(&p->mtx);
		rv = fetch_batch(p, ci, b, s, &err);
		pthread_mutex_lock(&p->mtx);
		p->activity = fb_clock_mono_ms();
		if (rv != FB_RV_OK && !p->fatal) {
			p->fatal = rv;
			snprintf(p->msg, sizeof(p->msg), "%s", err.msg);
		}
		s->state = 2;
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mtx);
	}
}

/* Runs items through FB_WORKER_FETCHERS connections; consume sees each batch in order. */
void
pull_pipeline(worker *w, const char *rp, const char *const *disks, const struct item *items,
              size_t n, int compress, int fill_local, consume_fn consume, void *arg)
{
	struct pipe        p;
	pthread_t          t[FB_WORKER_FETCHERS];
	struct fetcher_arg fa[FB_WORKER_FETCHERS];

	memset(&p, 0, sizeof(p));
	p.w        = w;
	p.rp       = rp;
	p.disks    = disks;
	p.items    = items;
	p.n        = n;
	p.nbatches = (n + BATCH - 1) / BATCH;
	p.compress = compress;
	p.local    = fill_local;
	p.activity = fb_clock_mono_ms();
	pthread_mutex_init(&p.mtx, NULL);
	pthread_cond_init(&p.cv, NULL);
	for (int i = 0; i < RING; i++)
		if ((p.ring[i].data = malloc((size_t)BATCH * FB_BLOCK_SIZE)) == NULL)
			worker_die(w, FB_RV_OUT_OF_MEMORY, "out of memory for transfer buffers");
	for (int i = 0; i < FB_WORKER_FETCHERS; i++) {
		fa[i] = (struct fetcher_arg){&p, i};
		pthread_create(&t[i], NULL, fetcher, &fa[i]);
	}
	for (size_t b = 0; b < p.nbatches; b++) {
		struct slot *s = &p.ring[b % RING];

		pthread_mutex_lock(&p.mtx);
		while (!(s->state == 2 && s->batch == b) && !p.fatal) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 100 * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&p.cv, &p.mtx, &ts);
			/* Report only while the fetchers make headway: a wedged
			 * connection then goes quiet and the supervisor restarts us. */
			if (fb_clock_mono_ms() - p.activity < STALL_MS) {
				pthread_mutex_unlock(&p.mtx);
				worker_emit(w, 0);
				pthread_mutex_lock(&p.mtx);
			}
		}
		if (p.fatal) {
			pthread_mutex_unlock(&p.mtx);
			worker_die(w, p.fatal, "%s", p.msg);
		}
		pthread_mutex_unlock(&p.mtx);
		consume(w, arg, items + b * BATCH, batch_len(&p, b), s->data, s->got);
		pthread_mutex_lock(&p.mtx);
		s->state = 0;
		pthread_cond_broadcast(&p.cv);
		pthread_mutex_unlock(&p.mtx);
	}
	for (int i = 0; i < FB_WORKER_FETCHERS; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < RING; i++)
		free(p.ring[i].data);
}

/* Fills the blocks of a batch that did not come over the wire. */
void
pull_fill_local(worker *w, const struct item *it, size_t n, uint8_t *data, const uint8_t *got)
{
	fb_err err = {0};

	for (size_t i = 0; i < n; i++) {
		if (got[i])
			continue;
		if (fb_store_get(w->store, &it[i].h, data + i * FB_BLOCK_SIZE, &err) != FB_RV_OK)
			worker_die(w, err.rv, "local copy of block %llu: %s",
			      (unsigned long long)it[i].block, err.msg);
	}
}

