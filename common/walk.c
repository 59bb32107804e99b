/*
 * walk.c - the top-down comparison of walk.h.
 *
 * State: the frontier is the list of target nodes at level cur whose hash
 * differs from the local tree's (or that the local tree lacks); next hands
 * out a slice of it, feed classifies each child of the slice: equal to the
 * local node (its leaves are the local ones), a differing interior node
 * (joins the frontier of level cur - 1), or a differing leaf (a diff).
 * When the frontier of level cur is used up, the next level's becomes it.
 */
#include <stdlib.h>
#include <string.h>

#include "failback/walk.h"

#define MAX_LEVELS 32

struct fb_walk {
	uint64_t         n;
	fb_hash          root;
	const fb_merkle *local;
	unsigned         levels;
	uint64_t         width[MAX_LEVELS];
	unsigned         cur;          /* level of the frontier */
	uint64_t        *frontier, nf; /* node indices at level cur */
	uint64_t         pos;          /* frontier[0..pos) handed out */
	uint64_t        *next, nn, next_cap;
	uint64_t         out_first, out_count; /* the last next's slice */
	size_t           expected;
	int              fed; /* the last slice has been fed */
	fb_walk_diff    *diffs;
	size_t           nd, diff_cap;
	fb_hash         *leaves; /* target leaves, or NULL */
	uint64_t         hashes;
	int              done;
};

unsigned
fb_walk_levels(uint64_t n, uint64_t *width)
{
	uint64_t w = n;
	unsigned L = 0;

	if (width != NULL)
		width[0] = n;
	L++;
	do {
		w = (w + FB_MERKLE_FANOUT - 1) / FB_MERKLE_FANOUT;
		if (width != NULL && L < MAX_LEVELS)
			width[L] = w;
		L++;
	} while (w > 1);
	return L;
}

/* The leaves under node index of level: [first, first + count). */
static void
walk_span(const fb_walk *w, unsigned level, uint64_t index, uint64_t *first, uint64_t *count)
{
	uint64_t span = 1;

	for (unsigned l = 0; l < level; l++)
		span *= FB_MERKLE_FANOUT;
	*first = index * span;
	*count = *first >= w->n ? 0 : (w->n - *first < span ? w->n - *first : span);
}

static void
walk_take_local(fb_walk *w, unsigned level, uint64_t index)
{
	uint64_t first, count;

	if (w->leaves == NULL)
		return;
	walk_span(w, level, index, &first, &count);
	for (uint64_t i = 0; i < count; i++)
		w->leaves[first + i] = *fb_merkle_node(w->local, 0, first + i);
}

uint32_t
fb_walk_open(fb_walk **out, uint64_t n, const fb_hash *target_root, const fb_merkle *local,
             int want_leaves, fb_err *err)
{
	fb_walk *w;

	*out = NULL;
	if (n == 0)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "a tree needs at least one leaf");
	if (local != NULL && fb_merkle_width(local, 0) != n)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "the local tree has %llu leaves, the target %llu",
		                  (unsigned long long)fb_merkle_width(local, 0),
		                  (unsigned long long)n);
	if (n > SIZE_MAX / sizeof(fb_hash) / 2)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "a tree of %llu leaves is too large",
		                  (unsigned long long)n);
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	w->n      = n;
	w->root   = *target_root;
	w->local  = local;
	w->levels = fb_walk_levels(n, w->width);
	if (want_leaves && (w->leaves = malloc(n * sizeof(fb_hash))) == NULL) {
		free(w);
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory for %llu leaves",
		                  (unsigned long long)n);
	}
	w->fed = 1;
	if (local != NULL && memcmp(fb_merkle_root(local), target_root, sizeof(fb_hash)) == 0) {
		walk_take_local(w, w->levels - 1, 0);
		w->done = 1;
	} else if ((w->frontier = malloc(sizeof(uint64_t))) == NULL) {
		fb_walk_close(w);
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	} else {
		w->frontier[0] = 0;
		w->nf          = 1;
		w->cur         = w->levels - 1;
	}
	*out = w;
	return FB_RV_OK;
}

void
fb_walk_close(fb_walk *w)
{
	if (w == NULL)
		return;
	free(w->frontier);
	free(w->next);
	free(w->diffs);
	free(w->leaves);
	free(w);
}

/* The children of a node of level `level`: first index and count. */
static uint64_t
walk_children(const fb_walk *w, unsigned level, uint64_t index, uint64_t *first)
{
	uint64_t below = w->width[level - 1];

	*first = index * FB_MERKLE_FANOUT;
	if (*first >= below)
		return 0;
	return below - *first < FB_MERKLE_FANOUT ? below - *first : FB_MERKLE_FANOUT;
}

uint32_t
fb_walk_next(fb_walk *w, fb_walk_ref *refs, size_t cap, size_t *k, fb_err *err)
{
	*k = 0;
	if (!w->fed)
		return fb_err_set(err, FB_RV_INVALID_STATE, "walk: the last nodes were not fed");
	while (!w->done && w->pos == w->nf) {
		/* this level is used up: descend */
		free(w->frontier);
		w->frontier = w->next;
		w->nf       = w->nn;
		w->next     = NULL;
		w->nn = w->next_cap = 0;
		w->pos              = 0;
		w->cur--;
		if (w->nf == 0 || w->cur == 0)
			w->done = 1;
	}
	if (w->done || cap == 0)
		return FB_RV_OK;
	w->out_first = w->pos;
	w->out_count = w->nf - w->pos < cap ? w->nf - w->pos : cap;
	w->expected  = 0;
	for (uint64_t i = 0; i < w->out_count; i++) {
		uint64_t first;

		refs[i].level = w->cur;
		refs[i].index = w->frontier[w->pos + i];
		w->expected += walk_children(w, w->cur, refs[i].index, &first);
	}
	w->pos += w->out_count;
	w->fed = 0;
	*k     = w->out_count;
	return FB_RV_OK;
}

size_t
fb_walk_expected(const fb_walk *w)
{
	return w->fed ? 0 : w->expected;
}

static uint32_t
walk_push_next(fb_walk *w, uint64_t index, fb_err *err)
{
	if (w->nn == w->next_cap) {
		uint64_t cap = w->next_cap ? w->next_cap * 2 : 64;
		uint64_t *g  = realloc(w->next, cap * sizeof(*g));

		if (g == NULL)
			return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory walking the tree");
		w->next     = g;
		w->next_cap = cap;
	}
	w->next[w->nn++] = index;
	return FB_RV_OK;
}

static uint32_t
walk_push_diff(fb_walk *w, uint64_t block, const fb_hash *h, fb_err *err)
{
	if (w->nd == w->diff_cap) {
		size_t        cap = w->diff_cap ? w->diff_cap * 2 : 64;
		fb_walk_diff *g   = realloc(w->diffs, cap * sizeof(*g));

		if (g == NULL)
			return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory walking the tree");
		w->diffs    = g;
		w->diff_cap = cap;
	}
	w->diffs[w->nd].block = block;
	w->diffs[w->nd].h     = *h;
	w->nd++;
	return FB_RV_OK;
}

uint32_t
fb_walk_feed(fb_walk *w, const fb_hash *hashes, size_t nh, fb_err *err)
{
	unsigned child_level = w->cur - 1;
	size_t   hi          = 0;
	uint32_t rv;

	if (w->fed)
		return fb_err_set(err, FB_RV_INVALID_STATE, "walk: nothing was asked for");
	if (nh != w->expected)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "the tree reply has %zu hashes where %zu were expected", nh,
		                  w->expected);
	for (uint64_t i = 0; i < w->out_count; i++) {
		uint64_t first, cnt = walk_children(w, w->cur, w->frontier[w->out_first + i], &first);

		for (uint64_t c = 0; c < cnt; c++, hi++) {
			const fb_hash *h    = &hashes[hi];
			uint64_t       node = first + c;

			if (w->local != NULL &&
			    memcmp(h, fb_merkle_node(w->local, child_level, node), sizeof(*h)) == 0) {
				walk_take_local(w, child_level, node);
				continue;
			}
			if (child_level > 0)
				rv = walk_push_next(w, node, err);
			else {
				if (w->leaves != NULL)
					w->leaves[node] = *h;
				rv = walk_push_diff(w, node, h, err);
			}
			if (rv != FB_RV_OK)
				return rv;
		}
	}
	w->hashes += nh;
	w->fed = 1;
	return FB_RV_OK;
}

uint64_t
fb_walk_hashes(const fb_walk *w)
{
	return w->hashes;
}

uint32_t
fb_walk_finish(fb_walk *w, fb_walk_diff **diffs, size_t *nd, fb_hash **leaves, fb_err *err)
{
	size_t   k;
	uint32_t rv;

	*diffs = NULL;
	*nd    = 0;
	if (leaves != NULL)
		*leaves = NULL;
	if ((rv = fb_walk_next(w, NULL, 0, &k, err)) != FB_RV_OK)
		return rv;
	if (!w->done)
		return fb_err_set(err, FB_RV_INVALID_STATE, "walk: not done yet");
	if (w->leaves != NULL) {
		fb_hash root;

		if ((rv = fb_merkle_root_of(w->leaves, w->n, &root, err)) != FB_RV_OK)
			return rv;
		if (memcmp(&root, &w->root, sizeof(root)) != 0)
			return fb_err_set(err, FB_RV_FAILED, "the target's tree does not give its root");
	}
	/* Diffs come level by level in index order, so they are in block order. */
	*diffs   = w->diffs;
	*nd      = w->nd;
	w->diffs = NULL;
	w->nd    = 0;
	if (leaves != NULL) {
		*leaves   = w->leaves;
		w->leaves = NULL;
	}
	return FB_RV_OK;
}
