/*
 * merkle.c - builds every level of the tree in one allocation per level.
 */
#include <stdlib.h>
#include <string.h>

#include "failback/merkle.h"

#define MAX_LEVELS 32

struct fb_merkle {
	unsigned  nlevels;
	uint64_t  width[MAX_LEVELS];
	fb_hash  *level[MAX_LEVELS];
};

void
fb_merkle_free(fb_merkle *t)
{
	if (t == NULL)
		return;
	for (unsigned i = 0; i < t->nlevels; i++)
		free(t->level[i]);
	free(t);
}

uint32_t
fb_merkle_build(fb_merkle **out, const fb_hash *leaves, uint64_t n, fb_err *err)
{
	fb_merkle *t;

	if (n == 0)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "a Merkle tree needs a leaf");
	if ((t = calloc(1, sizeof(*t))) == NULL ||
	    (t->level[0] = malloc(n * sizeof(fb_hash))) == NULL) {
		free(t);
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory for %llu leaves",
		                  (unsigned long long)n);
	}
	memcpy(t->level[0], leaves, n * sizeof(fb_hash));
	t->width[0] = n;
	t->nlevels  = 1;
	do {
		unsigned k  = t->nlevels;
		uint64_t w  = (t->width[k - 1] + FB_MERKLE_FANOUT - 1) / FB_MERKLE_FANOUT;

		if ((t->level[k] = malloc(w * sizeof(fb_hash))) == NULL) {
			fb_merkle_free(t);
			return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
		}
		for (uint64_t i = 0; i < w; i++) {
			uint64_t first = i * FB_MERKLE_FANOUT;
			uint64_t cnt   = t->width[k - 1] - first;

			if (cnt > FB_MERKLE_FANOUT)
				cnt = FB_MERKLE_FANOUT;
			fb_hash_node(&t->level[k - 1][first], cnt, &t->level[k][i]);
		}
		t->width[k] = w;
		t->nlevels++;
	} while (t->width[t->nlevels - 1] > 1);
	*out = t;
	return FB_RV_OK;
}

unsigned
fb_merkle_levels(const fb_merkle *t)
{
	return t->nlevels;
}

uint64_t
fb_merkle_width(const fb_merkle *t, unsigned level)
{
	return level < t->nlevels ? t->width[level] : 0;
}

const fb_hash *
fb_merkle_node(const fb_merkle *t, unsigned level, uint64_t index)
{
	if (level >= t->nlevels || index >= t->width[level])
		return NULL;
	return &t->level[level][index];
}

const fb_hash *
fb_merkle_root(const fb_merkle *t)
{
	return &t->level[t->nlevels - 1][0];
}

void
fb_merkle_children(const fb_merkle *t, unsigned level, uint64_t index, uint64_t *first,
                   unsigned *count)
{
	uint64_t w;

	*first = index * FB_MERKLE_FANOUT;
	*count = 0;
	if (level == 0 || level >= t->nlevels)
		return;
	w = t->width[level - 1];
	if (*first < w)
		*count = (unsigned)(w - *first < FB_MERKLE_FANOUT ? w - *first : FB_MERKLE_FANOUT);
}

uint32_t
fb_merkle_root_of(const fb_hash *leaves, uint64_t n, fb_hash *root, fb_err *err)
{
	fb_merkle *t;
	uint32_t   rv;

	if ((rv = fb_merkle_build(&t, leaves, n, err)) != FB_RV_OK)
		return rv;
	*root = *fb_merkle_root(t);
	fb_merkle_free(t);
	return FB_RV_OK;
}
