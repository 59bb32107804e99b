/*
 * fuzz_reply.c - what the worker does with a primary's (or another
 * agent's) replies, and what a subscriber does with events: the first byte
 * picks the message, the rest is its bytes, fed to the same checks and
 * stages the agents use.
 *
 *   0 NegotiateResponse  → fb_pb_check_rp / fb_pb_to_rp (the manifest)
 *   1 HandOverResponse   → fb_pb_to_disks, fb_pb_check_rp on every point
 *   2 Relationship       → fb_pb_to_rps, fb_pb_to_disks (AdoptPrimary/Recovery)
 *   3 ReadBlocksResponse → fb_pb_block_accept on every block (zstd included)
 *   4 a tree walk        → fb_walk against a tree of the input's own leaves,
 *                          fed the rest of the input as GetTreeNodes replies
 *   5 an event           → fb_events_decode
 * Nothing may crash, leak or read out of bounds; a check that passes must
 * leave values within the protocol's limits.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "failback/events.h"
#include "failback/merkle.h"
#include "failback/pb.h"
#include "failback/walk.h"
#include "relationship.pb-c.h"
#include "resync.pb-c.h"
#include "wire_limits.h"

int    LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
size_t fuzz_builtin_seeds(uint8_t ***seeds, size_t **lens);

static void
manifest(const uint8_t *d, size_t n)
{
	Failback__NegotiateResponse *r = failback__negotiate_response__unpack(NULL, n, d);
	fb_rp                        rp;
	fb_err                       err;

	if (r == NULL)
		return;
	if (fb_pb_to_rp(r->target, "the primary", &rp, &err) == FB_RV_OK) {
		if (rp.ndisks == 0 || rp.ndisks > FB_WIRE_MAX_DISKS)
			abort();
		for (size_t i = 0; i < rp.ndisks; i++)
			if (rp.disks[i].nblocks !=
			    (rp.disks[i].size + FB_BLOCK_SIZE - 1) / FB_BLOCK_SIZE)
				abort();
	}
	failback__negotiate_response__free_unpacked(r, NULL);
}

static void
hand_over(const uint8_t *d, size_t n)
{
	Failback__HandOverResponse *r = failback__hand_over_response__unpack(NULL, n, d);
	fb_vm_disk                  disks[FB_MAX_DISKS];
	fb_err                      err;

	if (r == NULL)
		return;
	if (r->vm != NULL &&
	    fb_pb_to_disks(r->vm->disks, r->vm->n_disks, "the peer", disks, &err) == FB_RV_OK &&
	    (r->vm->n_disks == 0 || r->vm->n_disks > FB_MAX_DISKS))
		abort();
	for (size_t i = 0; i < r->n_points && i < FB_WIRE_MAX_POINTS; i++)
		(void)fb_pb_check_rp(r->points[i], "the peer", &err);
	failback__hand_over_response__free_unpacked(r, NULL);
}

static void
relationship(const uint8_t *d, size_t n)
{
	Failback__Relationship *r = failback__relationship__unpack(NULL, n, d);
	fb_vm_disk              disks[FB_MAX_DISKS];
	fb_rp                  *rps = NULL;
	fb_err                  err;

	if (r == NULL)
		return;
	if (fb_pb_to_rps(r->history, r->n_history, "the peer", &rps, &err) == FB_RV_OK &&
	    r->n_history > FB_WIRE_MAX_POINTS)
		abort();
	free(rps);
	(void)fb_pb_to_disks(r->disks, r->n_disks, "the peer", disks, &err);
	failback__relationship__free_unpacked(r, NULL);
}

static void
blocks(const uint8_t *d, size_t n)
{
	static uint8_t             *dst;
	static ZSTD_DCtx           *dctx;
	Failback__ReadBlocksResponse *r = failback__read_blocks_response__unpack(NULL, n, d);
	fb_hash                     want;
	fb_err                      err;

	if (dst == NULL && ((dst = malloc(FB_BLOCK_SIZE)) == NULL || (dctx = ZSTD_createDCtx()) == NULL))
		abort();
	if (r == NULL)
		return;
	memset(&want, 0, sizeof(want));
	for (size_t i = 0; i < r->n_blocks; i++) {
		if (i == 0)
			want = *fb_hash_zero(); /* a zero flag or zero data passes */
		(void)fb_pb_block_accept(r->blocks[i], r->blocks[i]->index, &want, dst, dctx, &err);
	}
	failback__read_blocks_response__free_unpacked(r, NULL);
}

/* A tree of up to 600 leaves from the input's first bytes; the target
 * root is another tree's; the rest of the input answers the walk's asks. */
static void
walk(const uint8_t *d, size_t n)
{
	fb_hash      *leaves, root;
	fb_merkle    *tree = NULL;
	fb_walk      *w    = NULL;
	fb_walk_ref   refs[64];
	fb_walk_diff *diffs = NULL;
	fb_hash      *got   = NULL;
	size_t        nd = 0, k = 1, pos;
	uint64_t      nl;
	fb_err        err;

	if (n < 3)
		return;
	nl = 1 + ((uint64_t)d[0] << 8 | d[1]) % 600;
	if ((leaves = calloc(nl, sizeof(*leaves))) == NULL)
		abort();
	for (uint64_t i = 0; i < nl; i++)
		leaves[i].b[0] = (uint8_t)(i % 7 == d[2] % 7 ? d[2] : 0);
	memset(&root, d[2], sizeof(root));
	if (fb_merkle_build(&tree, leaves, nl, &err) != FB_RV_OK)
		abort();
	if (fb_walk_open(&w, nl, &root, (d[2] & 1) ? tree : NULL, d[2] & 2, &err) != FB_RV_OK)
		goto out;
	pos = 3;
	for (int rounds = 0; rounds < 64; rounds++) {
		size_t want;

		if (fb_walk_next(w, refs, 64, &k, &err) != FB_RV_OK || k == 0)
			break;
		want = fb_walk_expected(w);
		if (n - pos < want * sizeof(fb_hash))
			break; /* a short reply: the worker refuses it before feeding */
		if (fb_walk_feed(w, (const fb_hash *)(const void *)(d + pos), want, &err) != FB_RV_OK)
			break;
		pos += want * sizeof(fb_hash);
	}
	if (k == 0 && fb_walk_finish(w, &diffs, &nd, &got, &err) == FB_RV_OK)
		for (size_t i = 0; i < nd; i++)
			if (diffs[i].block >= nl)
				abort();
out:
	free(diffs);
	free(got);
	fb_walk_close(w);
	fb_merkle_free(tree);
	free(leaves);
}

static void
event(const uint8_t *d, size_t n)
{
	Failback__JobEvent *ev = NULL;
	char                topic[128];
	fb_err              err;

	if (fb_events_decode(d, n, topic, sizeof(topic), &ev, &err) == FB_RV_OK) {
		if (strlen(topic) >= sizeof(topic))
			abort();
		failback__job_event__free_unpacked(ev, NULL);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	switch (data[0] % 6) {
	case 0: manifest(data + 1, size - 1); break;
	case 1: hand_over(data + 1, size - 1); break;
	case 2: relationship(data + 1, size - 1); break;
	case 3: blocks(data + 1, size - 1); break;
	case 4: walk(data + 1, size - 1); break;
	default: event(data + 1, size - 1); break;
	}
	return 0;
}

/* Seeds: a valid manifest, a zero block, a compressed block, a walk. */
size_t
fuzz_builtin_seeds(uint8_t ***seeds, size_t **lens)
{
	static uint8_t  *s[4];
	static size_t    l[4];
	static uint8_t   root[FB_HASH_LEN];
	Failback__NegotiateResponse nr  = FAILBACK__NEGOTIATE_RESPONSE__INIT;
	Failback__RecoveryPoint     rp  = FAILBACK__RECOVERY_POINT__INIT;
	Failback__DiskManifest      dm  = FAILBACK__DISK_MANIFEST__INIT, *pdm = &dm;
	Failback__ReadBlocksResponse rb = FAILBACK__READ_BLOCKS_RESPONSE__INIT;
	Failback__BlockData         b0  = FAILBACK__BLOCK_DATA__INIT, b1 = FAILBACK__BLOCK_DATA__INIT;
	Failback__BlockData        *pb[2] = {&b0, &b1};
	uint8_t                     z[256], raw[FB_BLOCK_SIZE] = {0};
	size_t                      zl;

	rp.id             = "00000000-0000-4000-8000-000000000001";
	rp.vm_id          = "00000000-0000-4000-8000-000000000002";
	rp.hash_algorithm = "sha256";
	dm.name           = "disk0.img";
	dm.size_bytes     = 3 * FB_BLOCK_SIZE + 1;
	dm.block_size     = FB_BLOCK_SIZE;
	dm.block_count    = 4;
	dm.root.data      = root;
	dm.root.len       = FB_HASH_LEN;
	rp.disks          = &pdm;
	rp.n_disks        = 1;
	nr.target         = &rp;
	l[0]              = 1 + failback__negotiate_response__get_packed_size(&nr);
	s[0]              = calloc(1, l[0]);
	failback__negotiate_response__pack(&nr, s[0] + 1);
	s[0][0] = 0;
	b0.zero = 1;
	zl      = ZSTD_compress(z, sizeof(z), raw, sizeof(raw), 1);
	b1.index      = 1;
	b1.compressed = 1;
	b1.data.data  = z;
	b1.data.len   = zl;
	rb.blocks     = pb;
	rb.n_blocks   = 2;
	l[1]          = 1 + failback__read_blocks_response__get_packed_size(&rb);
	s[1]          = calloc(1, l[1]);
	failback__read_blocks_response__pack(&rb, s[1] + 1);
	s[1][0] = 3;
	l[2]    = 1 + 3 + 64 * FB_HASH_LEN;
	s[2]    = calloc(1, l[2]);
	s[2][0] = 4;
	s[2][1] = 1;
	s[2][2] = 44;
	s[2][3] = 3;
	l[3]    = 2;
	s[3]    = calloc(1, l[3]);
	s[3][0] = 5;
	*seeds  = s;
	*lens   = l;
	return 4;
}
