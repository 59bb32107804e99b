/*
 * resync.c - the primary's ResyncSource: the reverse resync stream served
 * to replica agents (agent role only).
 *
 * Negotiate names the target point and the points both sides hold;
 * GetTreeNodes returns the children of Merkle nodes so the replica can walk
 * down only where its disk differs; ReadBlocks returns blocks, each read
 * through the store's verifying path, zero blocks as a flag, zstd when the
 * replica asks and it pays.
 *
 * A VM whose relationship names its receiving side (AdoptPrimary, or
 * `primary-vm add --replica-name`) is served only to that replica agent:
 * Negotiate must carry its proof of identity (proof.h) and answers with a
 * session token, which GetTreeNodes and ReadBlocks of the VM's points must
 * carry. Other VMs are served to any agents-CA certificate.
 *
 * Trees are rebuilt from the stored leaves on first use and kept in a small
 * cache (points are immutable, so an entry never goes stale; see below for
 * its lock).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/md.h>

#include <zstd.h>

#include "failback/agent.h"
#include "failback/clock.h"
#include "failback/id.h"
#include "failback/log.h"
#include "failback/merkle.h"
#include "failback/pb.h"
#include "failback/proof.h"
#include "failback/rp.h"
#include "failback/tls.h"
#include "primary.h"
#include "resync.pb-c.h"
#include "wire_limits.h"

#define CACHE_SLOTS    4
#define MAX_TREE_NODES FB_WIRE_MAX_TREE_NODES
#define MAX_READ       FB_WIRE_MAX_READ_BLOCKS

/*
 * The cache: cache_mtx guards the slots and is held only to look up, pin
 * and unpin; trees are loaded and built without it, so one replica's
 * first GetTreeNodes never stalls another's ReadBlocks. A pinned slot is
 * never evicted; a tree built when every slot is pinned is used once and
 * freed.
 */
struct tree_slot {
	char       rp[FB_ID_LEN + 1];
	char       disk[FB_NAME_MAX + 1];
	fb_merkle *tree;
	uint64_t   used;
	int        pins;
};

struct tree_ref {
	struct tree_slot *slot; /* NULL: tree is the caller's to free */
	fb_merkle        *tree;
};

static pthread_mutex_t  cache_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct tree_slot cache[CACHE_SLOTS];
static uint64_t         cache_tick;

static struct tree_slot *
tree_find_locked(const char *rp_id, const char *disk)
{
	for (int i = 0; i < CACHE_SLOTS; i++)
		if (cache[i].tree != NULL && strcasecmp(cache[i].rp, rp_id) == 0 &&
		    strcmp(cache[i].disk, disk) == 0)
			return &cache[i];
	return NULL;
}

/* Finds or builds the tree of rp/disk, pinned until tree_put. */
static uint32_t
tree_get(primary *p, const char *rp_id, const char *disk, struct tree_ref *ref, fb_err *err)
{
	struct tree_slot *slot, *victim = NULL;
	fb_merkle        *built;
	fb_hash          *leaves;
	uint64_t          n;
	uint32_t          rv;

	pthread_mutex_lock(&cache_mtx);
	if ((slot = tree_find_locked(rp_id, disk)) != NULL) {
		slot->pins++;
		slot->used = ++cache_tick;
		*ref       = (struct tree_ref){slot, slot->tree};
		pthread_mutex_unlock(&cache_mtx);
		return FB_RV_OK;
	}
	pthread_mutex_unlock(&cache_mtx);
	if ((rv = fb_rp_leaves(p->db, rp_id, disk, &leaves, &n, err)) != FB_RV_OK)
		return rv;
	rv = fb_merkle_build(&built, leaves, n, err);
	free(leaves);
	if (rv != FB_RV_OK)
		return rv;
	pthread_mutex_lock(&cache_mtx);
	if ((slot = tree_find_locked(rp_id, disk)) != NULL) {
		/* built meanwhile by another call: use that one */
		slot->pins++;
		slot->used = ++cache_tick;
		*ref       = (struct tree_ref){slot, slot->tree};
		pthread_mutex_unlock(&cache_mtx);
		fb_merkle_free(built);
		return FB_RV_OK;
	}
	for (int i = 0; i < CACHE_SLOTS; i++)
		if (cache[i].pins == 0 && (victim == NULL || cache[i].used < victim->used))
			victim = &cache[i];
	if (victim == NULL) {
		pthread_mutex_unlock(&cache_mtx);
		*ref = (struct tree_ref){NULL, built};
		return FB_RV_OK;
	}
	fb_merkle_free(victim->tree);
	victim->tree = built;
	snprintf(victim->rp, sizeof(victim->rp), "%s", rp_id);
	snprintf(victim->disk, sizeof(victim->disk), "%s", disk);
	victim->used = ++cache_tick;
	victim->pins = 1;
	pthread_mutex_unlock(&cache_mtx);
	*ref = (struct tree_ref){victim, built};
	return FB_RV_OK;
}

static void
tree_put(struct tree_ref *ref)
{
	if (ref->slot == NULL) {
		fb_merkle_free(ref->tree);
		return;
	}
	pthread_mutex_lock(&cache_mtx);
	ref->slot->pins--;
	pthread_mutex_unlock(&cache_mtx);
}

/*
 * The split-brain guard: a VM this primary handed over is served by the
 * other site now, and a replica whose copy is of a newer generation than
 * this primary's must not be overwritten from it. Forcing is logged.
 */
static uint32_t
negotiate_guard(fb_rpc_call *call, const fb_vm *vm, const Failback__NegotiateRequest *req)
{
	const char *why = NULL;

	if (!primary_vm_active(vm))
		why = "was handed over by this primary: the other site is its primary now";
	else if (req->generation > vm->generation)
		why = "is older on this primary than on the replica";
	if (why == NULL)
		return FB_RV_OK;
	if (req->force) {
		fb_log_warn("FB4024",
		            "Negotiate for VM %s forced: it %s (generation %llu here, %llu on the "
		            "replica)",
		            vm->name, why, (unsigned long long)vm->generation,
		            (unsigned long long)req->generation);
		return FB_RV_OK;
	}
	return fb_rpc_fail(call, FB_RV_INVALID_STATE,
	                   "VM %s %s (generation %llu here, %llu on the replica)", vm->name, why,
	                   (unsigned long long)vm->generation, (unsigned long long)req->generation);
}

/*
 * Leases: a point a replica is pulling is kept by pruning (rp.h) until
 * LEASE_MS after the last call that used it, so taking new points with a
 * small RecoveryHistory never removes the target of a running failback.
 * lease_mtx is a leaf lock: rp_prune calls lease_held inside a commit.
 */
#define LEASES   64
#define LEASE_MS (10 * 60 * 1000)

static pthread_mutex_t lease_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char     rp[FB_ID_LEN + 1];
	uint64_t until;
} leases[LEASES];

static void
lease_touch(const char *rp_id)
{
	uint64_t now = fb_clock_mono_ms();
	int      slot = -1;

	if (!fb_id_valid(rp_id))
		return;
	pthread_mutex_lock(&lease_mtx);
	for (int i = 0; i < LEASES; i++) {
		if (strcasecmp(leases[i].rp, rp_id) == 0) {
			slot = i;
			break;
		}
		if (slot < 0 || leases[i].until < leases[slot].until)
			slot = i; /* else the oldest (or an expired) one */
	}
	snprintf(leases[slot].rp, sizeof(leases[slot].rp), "%s", rp_id);
	leases[slot].until = now + LEASE_MS;
	pthread_mutex_unlock(&lease_mtx);
}

static int
lease_held(const char *rp_id)
{
	uint64_t now  = fb_clock_mono_ms();
	int      held = 0;

	pthread_mutex_lock(&lease_mtx);
	for (int i = 0; i < LEASES && !held; i++)
		held = leases[i].until > now && strcasecmp(leases[i].rp, rp_id) == 0;
	pthread_mutex_unlock(&lease_mtx);
	if (held)
		fb_log_info("FB4025", "recovery point %s is kept past RecoveryHistory: a replica is "
		            "pulling it", rp_id);
	return held;
}

void
primary_resync_init(void)
{
	fb_rp_set_keep(lease_held);
}

/* --- who may read a VM: proofs seen, sessions given --- */

#define SESSION_VALID_MS (7ull * 24 * 3600 * 1000) /* a token outlives any one job */
#define SESSION_TAG      "failback session v1"

/*
 * A session token is [8 bytes: expiry, unix ms, big-endian][24 bytes of
 * HMAC-SHA256(key, tag | VM GUID | expiry)] with a key kept in
 * DATA_DIR/session.key: checking one needs no table, and tokens survive a
 * restart of the primary (a job resuming after one goes on reading).
 */
static uint8_t session_key[32];
static int     session_key_ready;

uint32_t
primary_sessions_open(const char *data_dir, fb_err *err)
{
	char        path[4096];
	struct stat st;
	int         fd;

	snprintf(path, sizeof(path), "%s/session.key", data_dir);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd >= 0) {
		uint32_t rv = fb_random_bytes(session_key, sizeof(session_key), err);

		if (rv == FB_RV_OK && (write(fd, session_key, sizeof(session_key)) !=
		                           (ssize_t)sizeof(session_key) ||
		                       fsync(fd) != 0))
			rv = fb_err_errno(err, errno, path);
		close(fd);
		if (rv != FB_RV_OK) {
			unlink(path);
			return rv;
		}
		session_key_ready = 1;
		return FB_RV_OK;
	}
	if (errno != EEXIST)
		return fb_err_errno(err, errno, path);
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return fb_err_errno(err, errno, path);
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & 077) != 0 ||
	    st.st_size != (off_t)sizeof(session_key) ||
	    read(fd, session_key, sizeof(session_key)) != (ssize_t)sizeof(session_key)) {
		close(fd);
		return fb_err_set(err, FB_RV_ACCESS_DENIED,
		                  "%s: not a private 32-byte file (remove it: a new one is made, and "
		                  "replica agents negotiate again)",
		                  path);
	}
	close(fd);
	session_key_ready = 1;
	return FB_RV_OK;
}

static void
session_mac(const char *vm_id, uint64_t expiry, uint8_t *mac24)
{
	uint8_t mac[32], t[8];
	char    vm[FB_ID_LEN + 1];

	for (int i = 0; i < 8; i++)
		t[i] = (uint8_t)(expiry >> (56 - 8 * i));
	for (size_t i = 0; i <= FB_ID_LEN; i++) /* GUIDs compare case-blind */
		vm[i] = (char)(vm_id[i] >= 'A' && vm_id[i] <= 'F' ? vm_id[i] - 'A' + 'a' : vm_id[i]);
	{
		mbedtls_md_context_t c;

		mbedtls_md_init(&c);
		if (mbedtls_md_setup(&c, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 1) != 0 ||
		    mbedtls_md_hmac_starts(&c, session_key, sizeof(session_key)) != 0 ||
		    mbedtls_md_hmac_update(&c, (const uint8_t *)SESSION_TAG, sizeof(SESSION_TAG)) != 0 ||
		    mbedtls_md_hmac_update(&c, (const uint8_t *)vm, FB_ID_LEN) != 0 ||
		    mbedtls_md_hmac_update(&c, t, sizeof(t)) != 0 ||
		    mbedtls_md_hmac_finish(&c, mac) != 0)
			memset(mac, 0, sizeof(mac)); /* matches no token: the key is random */
		mbedtls_md_free(&c);
	}
	memcpy(mac24, mac, 24);
}

static void
session_give(const char *vm_id, uint8_t *token)
{
	uint64_t expiry = (uint64_t)fb_clock_unix_ms() + SESSION_VALID_MS;

	for (int i = 0; i < 8; i++)
		token[i] = (uint8_t)(expiry >> (56 - 8 * i));
	session_mac(vm_id, expiry, token + 8);
}

/* Whether token is a live session for vm_id. */
static int
session_valid(const ProtobufCBinaryData *token, const char *vm_id)
{
	uint8_t  mac[24], diff = 0;
	uint64_t expiry = 0;

	if (!session_key_ready || token->len != FB_PROOF_TOKEN_LEN)
		return 0;
	for (int i = 0; i < 8; i++)
		expiry = expiry << 8 | token->data[i];
	if (expiry < (uint64_t)fb_clock_unix_ms())
		return 0;
	session_mac(vm_id, expiry, mac);
	for (int i = 0; i < 24; i++)
		diff |= (uint8_t)(mac[i] ^ token->data[8 + i]);
	return diff == 0;
}

/* Negotiate of a VM that names its receiving side: the proof must come
 * from that replica agent, for this primary, now, once. */
static uint32_t
proof_check(primary *p, fb_rpc_call *call, const fb_vm *vm,
            const Failback__NegotiateRequest *req)
{
	const fb_agent_settings *set  = fb_agent_settings_get(p->agent);
	uint64_t                 now  = (uint64_t)fb_clock_unix_ms();
	uint64_t                 t    = req->proof_time_unix_ms;
	fb_err                   err  = {0};

	if (req->proof_certificate.len == 0)
		return fb_rpc_fail(call, FB_RV_ACCESS_DENIED,
		                   "VM %s is served only to replica agent %s: the request carries "
		                   "no proof of identity",
		                   vm->name, vm->peer_name);
	if (!fb_proof_cert_names(set->cert, req->proof_primary_name))
		return fb_rpc_fail(call, FB_RV_ACCESS_DENIED,
		                   "the proof of identity was made for another primary (%.80s)",
		                   req->proof_primary_name);
	if (t + FB_PROOF_WINDOW_MS < now || t > now + FB_PROOF_WINDOW_MS)
		return fb_rpc_fail(call, FB_RV_ACCESS_DENIED,
		                   "the proof of identity is dated %lld s from this primary's clock "
		                   "(more than %u s apart: are both clocks synchronised?)",
		                   (long long)((int64_t)(t - now) / 1000), FB_PROOF_WINDOW_MS / 1000);
	if (fb_proof_verify(set->ca_agents, req->proof_certificate.data, req->proof_certificate.len,
	                    req->vm, req->proof_primary_name, t, req->proof_nonce.data,
	                    req->proof_nonce.len, req->proof_signature.data,
	                    req->proof_signature.len, vm->peer_name, &err) != FB_RV_OK) {
		fb_log_warn("FB4012", "refused VM %s to an agent: %s", vm->name, err.msg);
		return fb_rpc_fail(call, FB_RV_ACCESS_DENIED,
		                   "VM %s is served only to replica agent %s: %s", vm->name,
		                   vm->peer_name, err.msg);
	}
	if (!fb_proof_nonce_fresh(req->proof_nonce.data, now))
		return fb_rpc_fail(call, FB_RV_ACCESS_DENIED,
		                   "the proof of identity was used before (a replay)");
	return FB_RV_OK;
}

/*
 * What this host failed at (I/O, the database) is logged with its detail
 * and answered without it: another agent learns what failed, never this
 * host's paths. Refusals of the request itself keep their words.
 */
static uint32_t
agent_fail(fb_rpc_call *call, const fb_err *err, const char *what)
{
	int request = err->rv == FB_RV_FILE_NOT_FOUND || err->rv == FB_RV_INVALID_PARAMETER ||
	              err->rv == FB_RV_INVALID_STATE || err->rv == FB_RV_SYSTEM_IN_USE;

	if (request && strchr(err->msg, '/') == NULL)
		return fb_pb_fail(call, err);
	fb_log_error("FB4011", "%s: %s", what, err->msg);
	return fb_rpc_fail(call, err->rv, "%s failed on the primary (its log has the detail, FB4011)",
	                   what);
}

static uint32_t
negotiate(void *arg, fb_rpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
	primary                          *p   = arg;
	const Failback__NegotiateRequest *req = (const void *)in;
	Failback__NegotiateResponse      *rsp = (void *)out;
	fb_rp                            *rps;
	fb_vm                            *vm;
	size_t                            n, t;
	fb_err                            err = {0};
	uint32_t                          rv;

	if (fb_vm_get(p->db, req->vm, &vm, &err) != FB_RV_OK)
		return agent_fail(call, &err, "finding the VM");
	if (vm->peer_name[0] != '\0') {
		uint8_t *tok = fb_rpc_alloc(call, FB_PROOF_TOKEN_LEN);

		if ((rv = proof_check(p, call, vm, req)) != FB_RV_OK) {
			free(vm);
			return rv;
		}
		if (tok == NULL) {
			free(vm);
			return fb_rpc_fail(call, FB_RV_OUT_OF_MEMORY, "out of memory");
		}
		session_give(vm->id, tok);
		rsp->session_token.data = tok;
		rsp->session_token.len  = FB_PROOF_TOKEN_LEN;
	}
	if ((rv = negotiate_guard(call, vm, req)) != FB_RV_OK) {
		free(vm);
		return rv;
	}
	rsp->vm_name          = fb_rpc_strdup(call, vm->name);
	rsp->generation       = vm->generation;
	rsp->recovery_history = vm->recovery_history;
	free(vm);
	if (fb_rp_list(p->db, req->vm, &rps, &n, &err) != FB_RV_OK)
		return agent_fail(call, &err, "listing the recovery points");
	for (t = n; t > 0 && !rps[t - 1].held; t--)
		;
	if (t == 0) {
		free(rps);
		return fb_rpc_fail(call, FB_RV_FILE_NOT_FOUND, "VM '%s' has no recovery point",
		                   req->vm);
	}
	t--;
	if (req->recovery_point_identifier[0] != '\0') {
		for (t = 0; t < n && strcasecmp(rps[t].id, req->recovery_point_identifier) != 0; t++)
			;
		if (t == n || !rps[t].held) {
			rv = fb_rpc_fail(call, FB_RV_FILE_NOT_FOUND,
			                 t == n ? "recovery point %.40s of VM '%s' does not exist on the "
			                          "primary"
			                        : "recovery point %.40s of VM '%s' is history on this "
			                          "primary: its blocks are held by the site it came from",
			                 req->recovery_point_identifier, req->vm);
			free(rps);
			return rv;
		}
	}
	lease_touch(rps[t].id);
	rsp->target        = fb_pb_rp(call, &rps[t]);
	rsp->tree_fanout   = FB_MERKLE_FANOUT;
	rsp->shared_points = fb_rpc_alloc(call, (req->n_known_points + 1) * sizeof(char *));
	for (size_t k = 0; rsp->shared_points != NULL && k < req->n_known_points; k++)
		for (size_t i = 0; i < n; i++)
			if (strcasecmp(rps[i].id, req->known_points[k]) == 0)
				rsp->shared_points[rsp->n_shared_points++] =
				    fb_rpc_strdup(call, rps[i].id);
	free(rps);
	if (rsp->target == NULL || rsp->shared_points == NULL || rsp->vm_name == NULL)
		return fb_rpc_fail(call, FB_RV_OUT_OF_MEMORY, "out of memory");
	return FB_RV_OK;
}

/* A point of a VM that names its receiving side is read only within a
 * session Negotiate gave for that VM. */
static uint32_t
point_allowed(primary *p, fb_rpc_call *call, const char *rp_id,
              const ProtobufCBinaryData *token)
{
	char     vm_id[FB_ID_LEN + 1];
	fb_vm   *vm;
	fb_err   err = {0};
	int      gated;

	if (fb_rp_owner(p->db, rp_id, vm_id, &err) != FB_RV_OK)
		return agent_fail(call, &err, "finding the recovery point");
	if (fb_vm_get(p->db, vm_id, &vm, &err) != FB_RV_OK)
		return agent_fail(call, &err, "finding the VM");
	gated = vm->peer_name[0] != '\0';
	free(vm);
	if (gated && !session_valid(token, vm_id))
		return fb_rpc_fail(call, FB_RV_ACCESS_DENIED,
		                   "recovery point %.40s is read only within a session of its VM's "
		                   "replica agent (Negotiate first)",
		                   rp_id);
	return FB_RV_OK;
}

static uint32_t
get_tree_nodes(void *arg, fb_rpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
	const Failback__GetTreeNodesRequest *req = (const void *)in;
	Failback__GetTreeNodesResponse      *rsp = (void *)out;
	struct tree_ref                      ref;
	fb_hash                             *buf;
	size_t                               nh = 0;
	fb_err                               err = {0};
	uint32_t                             rv;

	if (req->n_nodes == 0 || req->n_nodes > MAX_TREE_NODES)
		return fb_rpc_fail(call, FB_RV_INVALID_PARAMETER, "ask for 1 to %d nodes",
		                   MAX_TREE_NODES);
	if ((buf = fb_rpc_alloc(call, req->n_nodes * FB_MERKLE_FANOUT * sizeof(fb_hash))) == NULL)
		return fb_rpc_fail(call, FB_RV_OUT_OF_MEMORY, "out of memory");
	if ((rv = point_allowed(arg, call, req->recovery_point_identifier, &req->session_token)) !=
	    FB_RV_OK)
		return rv;
	if (tree_get(arg, req->recovery_point_identifier, req->disk, &ref, &err) != FB_RV_OK)
		return agent_fail(call, &err, "loading the disk's tree");
	lease_touch(req->recovery_point_identifier);
	for (size_t i = 0; i < req->n_nodes; i++) {
		uint64_t first;
		unsigned cnt;

		if (req->nodes[i]->level == 0 ||
		    req->nodes[i]->index >= fb_merkle_width(ref.tree, req->nodes[i]->level)) {
			tree_put(&ref);
			return fb_rpc_fail(call, FB_RV_INVALID_PARAMETER,
			                   "no interior node %llu at level %u",
			                   (unsigned long long)req->nodes[i]->index,
			                   req->nodes[i]->level);
		}
		fb_merkle_children(ref.tree, req->nodes[i]->level, req->nodes[i]->index, &first,
		                   &cnt);
		for (unsigned c = 0; c < cnt; c++)
			buf[nh++] = *fb_merkle_node(ref.tree, req->nodes[i]->level - 1, first + c);
	}
	tree_put(&ref);
	rsp->hashes.data = (uint8_t *)buf;
	rsp->hashes.len  = nh * sizeof(fb_hash);
	return FB_RV_OK;
}

static uint32_t
read_blocks(void *arg, fb_rpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
	primary                           *p   = arg;
	const Failback__ReadBlocksRequest *req = (const void *)in;
	Failback__ReadBlocksResponse      *rsp = (void *)out;
	struct tree_ref                    ref;
	fb_hash                            want[MAX_READ];
	uint64_t                           nleaves;
	uint8_t                           *blk, *z = NULL;
	fb_err                             err  = {0};
	uint32_t                           rv   = FB_RV_OK;

	if (req->n_blocks == 0 || req->n_blocks > MAX_READ)
		return fb_rpc_fail(call, FB_RV_INVALID_PARAMETER, "ask for 1 to %d blocks",
		                   MAX_READ);
	if ((rv = point_allowed(p, call, req->recovery_point_identifier, &req->session_token)) !=
	    FB_RV_OK)
		return rv;
	if (tree_get(p, req->recovery_point_identifier, req->disk, &ref, &err) != FB_RV_OK)
		return agent_fail(call, &err, "loading the disk's tree");
	lease_touch(req->recovery_point_identifier);
	nleaves = fb_merkle_width(ref.tree, 0);
	for (size_t i = 0; i < req->n_blocks; i++) {
		if (req->blocks[i] >= nleaves) {
			tree_put(&ref);
			return fb_rpc_fail(call, FB_RV_INVALID_PARAMETER, "no block %llu in %s",
			                   (unsigned long long)req->blocks[i], req->disk);
		}
		want[i] = *fb_merkle_node(ref.tree, 0, req->blocks[i]);
	}
	tree_put(&ref);

	rsp->blocks = fb_rpc_alloc(call, req->n_blocks * sizeof(*rsp->blocks));
	if (rsp->blocks == NULL || (blk = fb_rpc_alloc(call, FB_BLOCK_SIZE)) == NULL ||
	    (req->compress && (z = fb_rpc_alloc(call, ZSTD_COMPRESSBOUND(FB_BLOCK_SIZE))) == NULL))
		return fb_rpc_fail(call, FB_RV_OUT_OF_MEMORY, "out of memory");
	for (size_t i = 0; i < req->n_blocks && rv == FB_RV_OK; i++) {
		Failback__BlockData *b = fb_rpc_alloc(call, sizeof(*b));
		uint8_t             *data;
		uint32_t             zlen = 0;

		if (b == NULL) {
			rv = fb_rpc_fail(call, FB_RV_OUT_OF_MEMORY, "out of memory");
			break;
		}
		failback__block_data__init(b);
		b->index              = req->blocks[i];
		rsp->blocks[i]        = b;
		rsp->n_blocks         = i + 1;
		if (memcmp(&want[i], fb_hash_zero(), sizeof(fb_hash)) == 0) {
			b->zero = 1;
			continue;
		}
		/* The store keeps a block zstd-compressed (level 1) when that saves
		 * an eighth, the rule a compressed reply follows: its frame goes out
		 * as it is, and a block stored raw did not compress. */
		if (fb_store_get_packed(p->store, &want[i], blk, z, z != NULL ? &zlen : NULL, &err) !=
		    FB_RV_OK) {
			fb_log_error("FB4010", "serving %s/%s block %llu: %s",
			             req->recovery_point_identifier, req->disk,
			             (unsigned long long)req->blocks[i], err.msg);
			rv = fb_rpc_fail(call, err.rv,
			                 "block %llu of %s in recovery point %.40s cannot be read on the "
			                 "primary (its log has the detail, FB4010)",
			                 (unsigned long long)req->blocks[i], req->disk,
			                 req->recovery_point_identifier);
			break;
		}
		if ((data = fb_rpc_alloc(call, zlen > 0 ? zlen : FB_BLOCK_SIZE)) == NULL) {
			rv = fb_rpc_fail(call, FB_RV_OUT_OF_MEMORY, "out of memory");
			break;
		}
		memcpy(data, zlen > 0 ? z : blk, zlen > 0 ? zlen : FB_BLOCK_SIZE);
		b->compressed = zlen > 0;
		b->data.data  = data;
		b->data.len   = zlen > 0 ? zlen : FB_BLOCK_SIZE;
	}
	return rv;
}

const fb_rpc_method primary_resync_methods[] = {
    {"Negotiate", negotiate, FB_ROLE_AGENT},
    {"GetTreeNodes", get_tree_nodes, FB_ROLE_AGENT},
    {"ReadBlocks", read_blocks, FB_ROLE_AGENT},
};
const size_t primary_resync_nmethods =
    sizeof(primary_resync_methods) / sizeof(primary_resync_methods[0]);
