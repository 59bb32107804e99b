/*
 * worker.c - the transfer of a Replicate or InitiateFailback job, run as
 * `failback-replica --worker-job ID` under the supervision of jobs.c.
 *
 * Why a process: NNG 1.5.2 can wedge a client socket whose peer dies
 * mid-message, and then nothing in the process can close it. Here a wedge
 * costs one worker: it stops reporting, the agent kills it and starts
 * another, which resumes from the checkpoint this one made durable. The
 * worker never calls nng_close; it exits.
 *
 * Failback, per included disk:
 *   Comparing    hash the recovery-VM disk (all cores, sequential reads) and
 *                walk the target's Merkle tree top-down with GetTreeNodes,
 *                descending only into subtrees whose hashes differ: the
 *                hashes exchanged are O(changed blocks x depth).
 *   Transferring the differing blocks, in batches: zero blocks as a flag,
 *                blocks the local store holds copied locally, the rest pulled
 *                by FETCHERS connections with ReadBlocks, each checked
 *                against its leaf hash. Before a batch is written, the old
 *                content goes to the undo log, fsynced; then the new blocks
 *                are written and fsynced; then the checkpoint is committed.
 *   Verifying    the written blocks are read back and hashed; with the
 *                unchanged leaves they must give the target's root.
 * Replicate walks the same tree against the newest point both sides hold,
 * pulls the blocks the local store lacks and adopts the point (same id).
 * The walk and the fetch pipeline are in pull.c.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "failback/clock.h"
#include "failback/disk.h"
#include "failback/fsops.h"
#include "failback/log.h"
#include "failback/merkle.h"
#include "failback/rpc.h"
#include "failback/rsd.h"
#include "failback/tls.h"
#include "failback/undo.h"
#include "replica.h"
#include "resync.pb-c.h"
#include "worker.h"

#define BATCH          32   /* blocks per ReadBlocks and per durable apply step */
#define EMIT_MS        100

void
worker_emit(worker *w, int force)
{
	char     line[256];
	uint64_t now = fb_clock_mono_ms();
	int      n;

	if (!force && now - w->last_emit < EMIT_MS)
		return;
	w->last_emit = now;
	n = snprintf(line, sizeof(line), "P %s %llu %llu %llu %llu\n", w->phase,
	             (unsigned long long)w->bytes_done, (unsigned long long)w->bytes_total,
	             (unsigned long long)w->blocks_done, (unsigned long long)w->blocks_total);
	(void)!write(STDOUT_FILENO, line, (size_t)n);
}

static void
w_phase(worker *w, const char *phase)
{
	snprintf(w->phase, sizeof(w->phase), "%s", phase);
	worker_emit(w, 1);
}

void
worker_die(worker *w, uint32_t rv, const char *fmt, ...)
{
	char    msg[FB_ERR_MSG_MAX], line[FB_ERR_MSG_MAX + 32];
	va_list ap;
	int     n;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	for (char *c = msg; *c; c++)
		if (*c == '\n')
			*c = ' ';
	fb_log_warn("FB6001", "job %s: %s", w->job, msg);
	n = snprintf(line, sizeof(line), "E %u %s\n", rv, msg);
	(void)!write(STDOUT_FILENO, line, (size_t)n);
	fb_rpc_exit(1);
}

void
worker_sleep_ms(worker *w, unsigned ms)
{
	for (unsigned t = 0; t < ms; t += 50) {
		usleep(50000);
		worker_emit(w, 0);
	}
}

/* Holds the pull to the operator's --max-transfer-rate. */
static void
w_throttle(worker *w)
{
	uint64_t due, now;

	if (w->rate_cap == 0)
		return;
	if (w->xfer_t0 == 0) {
		w->xfer_t0 = fb_clock_mono_ms();
		w->xfer_b0 = w->bytes_done;
	}
	due = w->xfer_t0 + (w->bytes_done - w->xfer_b0) * 1000 / w->rate_cap;
	while ((now = fb_clock_mono_ms()) < due) {
		usleep((useconds_t)((due - now < 50 ? due - now : 50) * 1000));
		worker_emit(w, 0);
	}
}

static int
is_ip_literal(const char *host)
{
	struct in6_addr a;

	return inet_pton(AF_INET, host, &a) == 1 || inet_pton(AF_INET6, host, &a) == 1;
}

/* Where and how to reach the primary: the settings, else the peer. */
static void
w_target(worker *w)
{
	const fb_agent_settings *s = w->r->set;

	snprintf(w->url, sizeof(w->url), "%s", s->peer_url);
	snprintf(w->sname, sizeof(w->sname), "%s", s->peer_name);
	if (w->rsd.primary_connection_point[0] != '\0') {
		const char *colon = strrchr(s->peer_url, ':');
		char        port[16];

		snprintf(port, sizeof(port), "%s", colon != NULL ? colon + 1 : "7413");
		if (w->rsd.port != 0)
			snprintf(port, sizeof(port), "%u", w->rsd.port);
		snprintf(w->url, sizeof(w->url), "tls+tcp://%s:%s", w->rsd.primary_connection_point,
		         port);
		if (!is_ip_literal(w->rsd.primary_connection_point))
			snprintf(w->sname, sizeof(w->sname), "%s", w->rsd.primary_connection_point);
	}
}

static void
w_connect(worker *w, int i)
{
	fb_err   err = {0};
	uint32_t rv  = FB_RV_NOT_AVAILABLE;

	for (int attempt = 0; attempt < FB_WORKER_RETRIES; attempt++) {
		if ((rv = fb_rpc_client_open(&w->cli[i], w->url, w->tls, &err)) == FB_RV_OK)
			return;
		if (rv == FB_RV_ACCESS_DENIED)
			break;
		fb_log_info("FB6002", "job %s: primary %s: %s (attempt %d)", w->job, w->url, err.msg,
		            attempt + 1);
		worker_sleep_ms(w, attempt < 3 ? 250u << attempt : 2000u);
	}
	worker_die(w, rv, "cannot reach the primary at %s: %s", w->url, err.msg);
}

/* --- failback --- */

struct apply {
	fb_vm                   *vm;
	int                      fds[FB_MAX_DISKS];
	int                      vmdisk[FB_MAX_DISKS]; /* checkpoint disk → VM disk index */
	fb_undo                 *undo;
	Failback__JobCheckpoint *cp;
	uint8_t                 *old;
	uint64_t                 unsaved;   /* blocks written since the last checkpoint */
	uint64_t                 saved_ms;  /* when the last checkpoint was made */
};

#define CKPT_BLOCKS 256 /* 16 MiB */
#define CKPT_MS     500

/*
 * Makes the blocks written so far durable and records them in the
 * checkpoint. Only the undo log must be durable before each write; the
 * data and the checkpoint can lag, because applying a block again after a
 * resume writes the same content and the undo replay keeps the oldest
 * record. Fewer fsyncs per block is most of a failback's cost after hashing.
 */
static void
apply_checkpoint(worker *w, struct apply *a, size_t disk)
{
	fb_err err = {0};

	if (a->unsaved == 0)
		return;
	if (fb_fs_fsync(a->fds[disk]) != 0)
		worker_die(w, FB_RV_FAILED, "%s: %s", a->vm->disks[a->vmdisk[disk]].path,
		           strerror(errno));
	a->cp->disks[disk]->applied += a->unsaved;
	a->cp->bytes_on_wire = w->wire;
	if (jobs_save_checkpoint(w->db, w->job, a->cp, &err) != FB_RV_OK)
		worker_die(w, err.rv, "checkpoint: %s", err.msg);
	a->unsaved  = 0;
	a->saved_ms = fb_clock_mono_ms();
}

static void
apply_batch(worker *w, void *arg, const struct item *it, size_t n, uint8_t *data,
            const uint8_t *got)
{
	struct apply *a = arg;
	fb_err        err = {0};
	int           fd;
	int           vd;

	pull_fill_local(w, it, n, data, got);
	vd = a->vmdisk[it[0].disk];
	fd = a->fds[it[0].disk];
	/* 1. the old content, durable before anything is overwritten */
	for (size_t i = 0; i < n; i++) {
		uint64_t off = it[i].block * FB_BLOCK_SIZE;
		uint64_t len = a->vm->disks[vd].size - off < FB_BLOCK_SIZE
		                   ? a->vm->disks[vd].size - off
		                   : FB_BLOCK_SIZE;
		ssize_t  r   = pread(fd, a->old, len, (off_t)off);

		if (r != (ssize_t)len)
			worker_die(w, FB_RV_FAILED, "%s: cannot read block %llu", a->vm->disks[vd].path,
			      (unsigned long long)it[i].block);
		if (fb_undo_append(a->undo, (uint32_t)vd, it[i].block, a->old, (uint32_t)len, &err) !=
		    FB_RV_OK)
			worker_die(w, err.rv, "undo log: %s", err.msg);
	}
	if (fb_undo_sync(a->undo, &err) != FB_RV_OK)
		worker_die(w, err.rv, "undo log: %s", err.msg);
	/* 2. the new content */
	for (size_t i = 0; i < n; i++) {
		uint64_t off = it[i].block * FB_BLOCK_SIZE;
		uint64_t len = a->vm->disks[vd].size - off < FB_BLOCK_SIZE
		                   ? a->vm->disks[vd].size - off
		                   : FB_BLOCK_SIZE;

		if (memcmp(&it[i].h, fb_hash_zero(), sizeof(fb_hash)) == 0) {
			if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
			              (off_t)len) != 0)
				worker_die(w, FB_RV_FAILED, "%s: %s", a->vm->disks[vd].path, strerror(errno));
		} else if (fb_fs_pwrite(fd, data + i * FB_BLOCK_SIZE, len, (off_t)off) < 0) {
			worker_die(w, FB_RV_FAILED, "%s: %s", a->vm->disks[vd].path, strerror(errno));
		}
	}
	/* 3. now and then: the data durable, then the checkpoint */
	a->unsaved += n;
	if (a->unsaved >= CKPT_BLOCKS || fb_clock_mono_ms() - a->saved_ms >= CKPT_MS)
		apply_checkpoint(w, a, it[0].disk);
	w->blocks_done += n;
	w->bytes_done += n * FB_BLOCK_SIZE;
	worker_emit(w, 0);
	w_throttle(w);
}

struct hash_progress {
	worker  *w;
	uint64_t base;
};

static uint32_t
hash_visit(void *arg, uint64_t index, const uint8_t *data, uint32_t len, const fb_hash *h,
           int zero, fb_err *err)
{
	struct hash_progress *hp = arg;

	(void)data;
	(void)h;
	(void)zero;
	(void)err;
	hp->w->bytes_done = hp->base + index * FB_BLOCK_SIZE + len;
	worker_emit(hp->w, 0);
	return FB_RV_OK;
}

static Failback__JobCheckpoint *
w_compare(worker *w, fb_vm *vm, const Failback__RecoveryPoint *target)
{
	Failback__JobCheckpoint *cp = calloc(1, sizeof(*cp));
	uint64_t                 total = 0, base = 0;
	fb_err                   err   = {0};

	failback__job_checkpoint__init(cp);
	cp->target = strdup(target->id);
	cp->disks  = calloc(target->n_disks + 1, sizeof(*cp->disks));
	for (size_t i = 0; i < vm->ndisks; i++)
		total += vm->disks[i].size;
	w->bytes_total = total;
	w->bytes_done  = 0;
	w_phase(w, "Comparing");
	for (size_t k = 0; k < target->n_disks; k++) {
		const Failback__DiskManifest *dm = target->disks[k];
		Failback__DiskCheckpoint     *dc = calloc(1, sizeof(*dc));
		struct hash_progress          hp = {w, base};
		fb_disk_scan                  scan;
		fb_merkle                    *tree;
		struct diff                  *diffs;
		size_t                        nd, vd;
		fb_hash                       root;

		failback__disk_checkpoint__init(dc);
		dc->name                   = strdup(dm->name);
		cp->disks[cp->n_disks++]   = dc;
		if (!fb_rsd_includes(&w->rsd, dm->name))
			continue;
		for (vd = 0; vd < vm->ndisks && strcmp(vm->disks[vd].name, dm->name) != 0; vd++)
			;
		if (vd == vm->ndisks)
			worker_die(w, FB_RV_FILE_NOT_FOUND, "recovery point %s has disk %s, which VM %s lacks",
			      target->id, dm->name, vm->name);
		if (fb_disk_hash(vm->disks[vd].path, hash_visit, &hp, &scan, &err) != FB_RV_OK)
			worker_die(w, err.rv == FB_RV_INVALID_PARAMETER ? FB_RV_FILE_NOT_FOUND : err.rv,
			      "recovery-VM disk %s: %s", dm->name, err.msg);
		base += vm->disks[vd].size;
		if (scan.size != dm->size_bytes)
			worker_die(w, FB_RV_FAILED,
			      "disk %s is %llu bytes on the replica but %llu in recovery point %s",
			      dm->name, (unsigned long long)scan.size,
			      (unsigned long long)dm->size_bytes, target->id);
		if (fb_merkle_build(&tree, scan.leaves, scan.nblocks, &err) != FB_RV_OK)
			worker_die(w, err.rv, "%s", err.msg);
		w->local[k] = scan.leaves; /* kept for a verify that re-reads only what changes */
		memcpy(&root, dm->root.data, sizeof(root));
		pull_walk(w, target->id, dm->name, dm->block_count, &root, tree, NULL, &diffs, &nd);
		fb_merkle_free(tree);
		dc->blocks      = malloc((nd + 1) * sizeof(uint64_t));
		dc->hashes.data = malloc(nd * sizeof(fb_hash) + 1);
		dc->hashes.len  = nd * sizeof(fb_hash);
		dc->n_blocks    = nd;
		for (size_t i = 0; i < nd; i++) {
			dc->blocks[i] = diffs[i].block;
			memcpy(dc->hashes.data + i * sizeof(fb_hash), &diffs[i].h, sizeof(fb_hash));
		}
		free(diffs);
		fb_log_info("FB6010", "job %s: disk %s differs in %zu of %llu blocks", w->job,
		            dm->name, nd, (unsigned long long)dm->block_count);
	}
	cp->bytes_on_wire = w->wire;
	if (jobs_save_checkpoint(w->db, w->job, cp, &err) != FB_RV_OK)
		worker_die(w, err.rv, "checkpoint: %s", err.msg);
	return cp;
}

/*
 * The written blocks are read back and hashed; with the leaves of the
 * blocks left alone (hashed in the compare phase, on a VM that is not
 * running) they must give the target's roots. A worker that resumed from a
 * checkpoint has no compare-phase leaves and re-reads the whole disk.
 */
static void
w_verify(worker *w, fb_vm *vm, const Failback__RecoveryPoint *target,
         const Failback__JobCheckpoint *cp)
{
	fb_err   err = {0};
	uint8_t *blk = malloc(FB_BLOCK_SIZE);

	w_phase(w, "Verifying");
	for (size_t k = 0; k < target->n_disks; k++) {
		const Failback__DiskManifest *dm = target->disks[k];
		fb_disk_scan                  scan;
		fb_hash                       root;
		size_t                        vd;

		if (!fb_rsd_includes(&w->rsd, dm->name))
			continue;
		for (vd = 0; vd < vm->ndisks && strcmp(vm->disks[vd].name, dm->name) != 0; vd++)
			;
		if (w->local[k] != NULL && k < cp->n_disks) {
			const Failback__DiskCheckpoint *dc = cp->disks[k];
			int                             fd = open(vm->disks[vd].path, O_RDONLY | O_CLOEXEC);

			if (fd < 0)
				worker_die(w, FB_RV_FAILED, "verifying %s: %s", dm->name, strerror(errno));
			for (size_t i = 0; i < dc->n_blocks; i++) {
				uint64_t off = dc->blocks[i] * FB_BLOCK_SIZE;
				uint64_t len = vm->disks[vd].size - off < FB_BLOCK_SIZE
				                   ? vm->disks[vd].size - off
				                   : FB_BLOCK_SIZE;

				if (pread(fd, blk, len, (off_t)off) != (ssize_t)len)
					worker_die(w, FB_RV_FAILED, "verifying %s block %llu: %s", dm->name,
					      (unsigned long long)dc->blocks[i], strerror(errno));
				fb_hash_block(blk, len, FB_BLOCK_SIZE, &w->local[k][dc->blocks[i]]);
			}
			close(fd);
			fb_merkle_root_of(w->local[k], dm->block_count, &root, &err);
		} else {
			if (fb_disk_hash(vm->disks[vd].path, NULL, NULL, &scan, &err) != FB_RV_OK)
				worker_die(w, err.rv, "verifying %s: %s", dm->name, err.msg);
			fb_merkle_root_of(scan.leaves, scan.nblocks, &root, &err);
			free(scan.leaves);
		}
		if (dm->root.len != sizeof(root) || memcmp(&root, dm->root.data, sizeof(root)) != 0)
			worker_die(w, FB_RV_FAILED, "disk %s does not match recovery point %s after failback",
			      dm->name, target->id);
	}
	free(blk);
}

static const Failback__RecoveryPoint *
w_negotiate(worker *w, const char *vm_ref, const char *rp, Failback__NegotiateResponse **rsp)
{
	Failback__NegotiateRequest req = FAILBACK__NEGOTIATE_REQUEST__INIT;
	fb_rp                     *rps = NULL;
	size_t                     n   = 0;
	char                     **known;
	fb_err                     err = {0};

	if (fb_rp_list(w->db, vm_ref, &rps, &n, &err) != FB_RV_OK)
		n = 0;
	known = calloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		known[i] = rps[i].id;
	req.vm                        = (char *)vm_ref;
	req.recovery_point_identifier = (char *)rp;
	req.known_points              = known;
	req.n_known_points            = n;
	if (pull_call(w, 0, "Negotiate", &req.base, (ProtobufCMessage **)rsp, &err) != FB_RV_OK)
		worker_die(w, err.rv, "negotiating with the primary: %s", err.msg);
	free(known);
	free(rps);
	if ((*rsp)->target == NULL || (*rsp)->target->n_disks == 0)
		worker_die(w, FB_RV_FAILED, "the primary named no target recovery point");
	for (size_t i = 0; i < (*rsp)->target->n_disks; i++)
		if (!fb_name_valid((*rsp)->target->disks[i]->name) ||
		    (*rsp)->target->disks[i]->root.len != FB_HASH_LEN ||
		    (*rsp)->target->disks[i]->block_size != FB_BLOCK_SIZE)
			worker_die(w, FB_RV_FAILED, "the primary's manifest is not usable");
	return (*rsp)->target;
}

static void
w_failback(worker *w)
{
	Failback__NegotiateResponse   *nr;
	const Failback__RecoveryPoint *target;
	Failback__JobCheckpoint       *cp = NULL;
	struct apply                   a;
	struct item                   *items;
	const char                    *names[FB_MAX_DISKS + 1];
	size_t                         nitems = 0;
	char                           undo[4200];
	fb_err                         err = {0};

	memset(&a, 0, sizeof(a));
	if (fb_vm_get(w->db, w->params->vm, &a.vm, &err) != FB_RV_OK)
		worker_die(w, err.rv, "%s", err.msg);
	w_phase(w, "WaitingForFailback");
	target = w_negotiate(w, a.vm->id, w->params->recovery_point_identifier, &nr);
	fb_log_info("FB6011", "job %s: failing VM %s back to recovery point %s", w->job,
	            a.vm->name, target->id);
	jobs_load_checkpoint(w->db, w->job, &cp, &err);
	if (cp == NULL || strcasecmp(cp->target, target->id) != 0)
		cp = w_compare(w, a.vm, target);
	else
		fb_log_info("FB6012", "job %s: resuming from its checkpoint", w->job);
	a.cp = cp;
	for (size_t k = 0; k < cp->n_disks; k++) {
		size_t vd;
		names[k] = cp->disks[k]->name;
		for (vd = 0; vd < a.vm->ndisks && strcmp(a.vm->disks[vd].name, names[k]) != 0; vd++)
			;
		a.vmdisk[k] = (int)vd;
		a.fds[k]    = vd < a.vm->ndisks ? open(a.vm->disks[vd].path, O_RDWR | O_CLOEXEC) : -1;
		if (cp->disks[k]->n_blocks > cp->disks[k]->applied && a.fds[k] < 0)
			worker_die(w, FB_RV_FILE_NOT_FOUND, "recovery-VM disk %s: %s", names[k],
			      strerror(errno));
		nitems += cp->disks[k]->n_blocks;
	}
	names[cp->n_disks] = NULL;
	/* Pending items, disk by disk (batches never cross disks: pad each disk to BATCH). */
	items            = calloc(nitems + cp->n_disks * BATCH + 1, sizeof(*items));
	w->blocks_total  = nitems;
	w->blocks_done   = 0;
	w->bytes_done    = 0;
	w->bytes_total   = nitems * FB_BLOCK_SIZE;
	w->wire          = cp->bytes_on_wire;
	replica_undo_path(w->r, a.vm->id, undo, sizeof(undo));
	{
		char dir[4200];
		snprintf(dir, sizeof(dir), "%s/undo", w->r->dir);
		mkdir(dir, 0700);
	}
	if (fb_undo_open(&a.undo, undo, &err) != FB_RV_OK)
		worker_die(w, err.rv, "undo log: %s", err.msg);
	a.old = malloc(FB_BLOCK_SIZE);
	w_phase(w, "Transferring");
	for (size_t k = 0; k < cp->n_disks; k++) {
		Failback__DiskCheckpoint *dc = cp->disks[k];
		size_t                    n  = 0;

		w->blocks_done += dc->applied;
		w->bytes_done += dc->applied * FB_BLOCK_SIZE;
		for (size_t i = dc->applied; i < dc->n_blocks; i++) {
			items[n].disk  = (uint32_t)k;
			items[n].block = dc->blocks[i];
			memcpy(&items[n].h, dc->hashes.data + i * sizeof(fb_hash), sizeof(fb_hash));
			n++;
		}
		if (n > 0) {
			a.saved_ms = fb_clock_mono_ms();
			pull_pipeline(w, target->id, names, items, n, w->rsd.compression != 0, 1,
			              apply_batch, &a);
			apply_checkpoint(w, &a, k);
		}
	}
	worker_emit(w, 1);
	w_verify(w, a.vm, target, cp);
	{
		struct rusage ru;

		getrusage(RUSAGE_SELF, &ru);
		fb_log_info("FB6013",
		            "job %s: %llu block(s) applied, %llu bytes on the wire, peak RSS %ld KiB",
		            w->job, (unsigned long long)w->blocks_total, (unsigned long long)w->wire,
		            ru.ru_maxrss);
	}
	(void)!write(STDOUT_FILENO, "D\n", 2);
	fb_rpc_exit(0);
}

/* --- replicate --- */

struct adopt {
	fb_rp_block *added;
	size_t       nadded, cap;
	fb_hash      last;
};

static void
store_batch(worker *w, void *arg, const struct item *it, size_t n, uint8_t *data,
            const uint8_t *got)
{
	struct adopt *ad  = arg;
	fb_err        err = {0};

	for (size_t i = 0; i < n; i++) {
		fb_store_loc loc;

		if (!got[i])
			continue;
		if (fb_store_append(w->store, &it[i].h, data + i * FB_BLOCK_SIZE, FB_BLOCK_SIZE, &loc,
		                    &err) != FB_RV_OK)
			worker_die(w, err.rv, "storing block: %s", err.msg);
		if (ad->nadded == ad->cap)
			ad->added = realloc(ad->added, (ad->cap = ad->cap ? ad->cap * 2 : 256) *
			                                   sizeof(*ad->added));
		ad->added[ad->nadded++] = (fb_rp_block){it[i].h, loc};
	}
	w->blocks_done += n;
	w->bytes_done += n * FB_BLOCK_SIZE;
	worker_emit(w, 0);
	w_throttle(w);
}

static int
cmp_hash(const void *a, const void *b)
{
	return memcmp(&((const struct item *)a)->h, &((const struct item *)b)->h, sizeof(fb_hash));
}

static void
w_replicate(worker *w)
{
	Failback__NegotiateResponse   *nr;
	const Failback__RecoveryPoint *target;
	fb_vm                         *vm = NULL;
	fb_rp                          rp, *base = NULL;
	fb_hash                       *leaves[FB_MAX_DISKS] = {0};
	struct adopt                   ad = {0};
	fb_err                         err = {0};
	char                           vmdir[4200];
	const char                    *names[FB_MAX_DISKS + 1];

	w_phase(w, "Negotiating");
	target = w_negotiate(w, w->params->vm, "", &nr);
	if (fb_vm_get(w->db, target->vm_id, &vm, &err) != FB_RV_OK) {
		fb_vm_disk disks[FB_MAX_DISKS];

		if (target->n_disks > FB_MAX_DISKS)
			worker_die(w, FB_RV_NOT_SUPPORTED, "too many disks");
		for (size_t i = 0; i < target->n_disks; i++) {
			snprintf(disks[i].name, sizeof(disks[i].name), "%s", target->disks[i]->name);
			disks[i].size = target->disks[i]->size_bytes;
		}
		replica_vm_dir(w->r, target->vm_id, vmdir, sizeof(vmdir));
		if (fb_vm_add_replica(w->db, target->vm_id, nr->vm_name, disks, target->n_disks,
		                      vmdir, FB_MAX_HISTORY, &err) != FB_RV_OK ||
		    fb_vm_get(w->db, target->vm_id, &vm, &err) != FB_RV_OK)
			worker_die(w, err.rv, "registering VM %s: %s", nr->vm_name, err.msg);
	}
	if (fb_rp_get(w->db, vm->id, target->id, &base, &err) == FB_RV_OK) {
		fb_log_info("FB6020", "job %s: recovery point %s is already here", w->job, target->id);
		(void)!write(STDOUT_FILENO, "D\n", 2);
		fb_rpc_exit(0);
	}
	base = NULL;
	for (size_t i = nr->n_shared_points; i > 0 && base == NULL; i--)
		if (fb_rp_get(w->db, vm->id, nr->shared_points[i - 1], &base, &err) != FB_RV_OK)
			base = NULL;
	memset(&rp, 0, sizeof(rp));
	snprintf(rp.id, sizeof(rp.id), "%s", target->id);
	snprintf(rp.vm_id, sizeof(rp.vm_id), "%s", vm->id);
	snprintf(rp.algorithm, sizeof(rp.algorithm), "%s", target->hash_algorithm);
	rp.time_ms = target->time_unix_ms;
	rp.type    = (int)target->type;
	rp.ndisks  = target->n_disks;
	w_phase(w, "Comparing");
	for (size_t k = 0; k < target->n_disks; k++) {
		const Failback__DiskManifest *dm   = target->disks[k];
		fb_merkle                    *tree = NULL;
		struct diff                  *diffs;
		size_t                        nd;
		fb_hash                       root;

		snprintf(rp.disks[k].name, sizeof(rp.disks[k].name), "%s", dm->name);
		rp.disks[k].size       = dm->size_bytes;
		rp.disks[k].block_size = dm->block_size;
		rp.disks[k].nblocks    = dm->block_count;
		memcpy(&rp.disks[k].root, dm->root.data, sizeof(fb_hash));
		memcpy(&root, dm->root.data, sizeof(root));
		names[k] = dm->name;
		if (base != NULL) {
			fb_hash *bl;
			uint64_t bn;
			if (fb_rp_leaves(w->db, base->id, dm->name, &bl, &bn, &err) == FB_RV_OK) {
				if (bn == dm->block_count)
					fb_merkle_build(&tree, bl, bn, &err);
				free(bl);
			}
		}
		leaves[k] = malloc(dm->block_count * sizeof(fb_hash) + 1);
		pull_walk(w, target->id, dm->name, dm->block_count, &root, tree, leaves[k], &diffs, &nd);
		fb_merkle_free(tree);
		{ /* blocks to pull: differing, non-zero, unique, not already stored */
			struct item *items = calloc(nd + 1, sizeof(*items));
			size_t       n = 0, u = 0;

			for (size_t i = 0; i < nd; i++)
				items[n++] = (struct item){(uint32_t)k, diffs[i].block, diffs[i].h};
			qsort(items, n, sizeof(*items), cmp_hash);
			for (size_t i = 0; i < n; i++)
				if (u == 0 || memcmp(&items[u - 1].h, &items[i].h, sizeof(fb_hash)) != 0)
					items[u++] = items[i];
			w->blocks_total += u;
			w->bytes_total += u * FB_BLOCK_SIZE;
			w_phase(w, "Transferring");
			if (u > 0)
				pull_pipeline(w, target->id, names, items, u, 1, 0, store_batch, &ad);
			free(items);
		}
		free(diffs);
	}
	if (fb_store_sync(w->store, &err) != FB_RV_OK ||
	    fb_rp_adopt(w->db, w->store, &rp, leaves, ad.added, ad.nadded, NULL, &err) != FB_RV_OK)
		worker_die(w, err.rv, "recording recovery point %s: %s", target->id, err.msg);
	fb_log_info("FB6021", "job %s: recovery point %s of %s replicated (%zu new blocks, %llu "
	            "bytes on the wire)",
	            w->job, target->id, vm->name, ad.nadded, (unsigned long long)w->wire);
	(void)!write(STDOUT_FILENO, "D\n", 2);
	fb_rpc_exit(0);
}

void
worker_main(replica *r, const char *job_id)
{
	worker        w;
	Failback__Job job = FAILBACK__JOB__INIT;
	char          vm_id[64], path[4200];
	fb_err        err = {0};

	memset(&w, 0, sizeof(w));
	w.r   = r;
	w.job = job_id;
	signal(SIGPIPE, SIG_IGN);
	/* A worker never outlives its agent: a restarted agent starts its own. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1)
		worker_die(&w, FB_RV_FAILED, "the agent is gone");
	snprintf(path, sizeof(path), "%s/state.db", r->dir);
	if (fb_db_open(&w.db, path, &err) != FB_RV_OK)
		worker_die(&w, err.rv, "%s", err.msg);
	snprintf(path, sizeof(path), "%s/blocks", r->dir);
	if (fb_store_open(&w.store, w.db, path, FB_STORE_NO_RECLAIM, &err) != FB_RV_OK)
		worker_die(&w, err.rv, "%s", err.msg);
	r->db    = w.db;
	r->store = w.store;
	if (jobs_load(r, job_id, &job, &w.params, vm_id, sizeof(vm_id), &err) != FB_RV_OK ||
	    w.params == NULL)
		worker_die(&w, err.rv ? err.rv : FB_RV_FAILED, "cannot load job: %s", err.msg);
	w.type = (int)job.job_type;
	if (fb_rsd_parse(w.params->replication_setting_data,
	                 strlen(w.params->replication_setting_data), &w.rsd, &err) != FB_RV_OK)
		worker_die(&w, err.rv, "%s", err.msg);
	w_target(&w);
	w.rate_cap = strtoull(r->set->max_transfer_rate, NULL, 10) << 20;
	if (w.rsd.thumbprint[0] != '\0') {
		char sha1[41], sha256[65];

		if (fb_tls_peer_thumbprint(w.url, r->set->ca_agents, r->set->cert, r->set->key,
		                           w.sname, sha1, sha256, &err) != FB_RV_OK)
			worker_die(&w, err.rv, "%s", err.msg);
		if (strcmp(w.rsd.thumbprint, strlen(w.rsd.thumbprint) == 40 ? sha1 : sha256) != 0)
			worker_die(&w, FB_RV_ACCESS_DENIED,
			      "the primary at %s presented certificate %s, not the pinned "
			      "CertificateThumbPrint %s",
			      w.url, strlen(w.rsd.thumbprint) == 40 ? sha1 : sha256, w.rsd.thumbprint);
	}
	if (fb_tls_config_client(&w.tls, r->set->ca_agents, r->set->cert, r->set->key, w.sname, 0,
	                         &err) != FB_RV_OK)
		worker_die(&w, err.rv, "%s", err.msg);
	for (int i = 0; i < FB_WORKER_FETCHERS; i++)
		w_connect(&w, i);
	if (w.type == JT_FAILBACK)
		w_failback(&w);
	if (w.type == JT_REPLICATE)
		w_replicate(&w);
	worker_die(&w, FB_RV_NOT_SUPPORTED, "job type %d has no worker", w.type);
}
