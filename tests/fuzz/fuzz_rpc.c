/*
 * fuzz_rpc.c - the RPC envelope and every request message: bytes as a
 * request envelope through the dispatcher with the agents' real services
 * (unimplemented handlers), and the payload decoded as each method's input
 * message. Nothing may crash, leak or read out of bounds, and every input
 * must get a reply.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.pb-c.h"
#include "failback/rpc.h"
#include "primary.pb-c.h"
#include "relationship.pb-c.h"
#include "replica.pb-c.h"
#include "resync.pb-c.h"
#include "rpc.pb-c.h"

int    LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
size_t fuzz_builtin_seeds(uint8_t ***seeds, size_t **lens);

static const ProtobufCServiceDescriptor *const services[] = {
    &failback__agent_service__descriptor, &failback__replication_service__descriptor,
    &failback__primary_service__descriptor, &failback__resync_source__descriptor,
    &failback__relationship_service__descriptor};
#define NSERVICES (sizeof(services) / sizeof(services[0]))

static fb_rpc_registry *reg;

static void
setup(void)
{
	fb_err err;

	if (reg != NULL)
		return;
	if (fb_rpc_registry_create(&reg, &err) != 0)
		abort();
	for (size_t s = 0; s < NSERVICES; s++) {
		const ProtobufCServiceDescriptor *svc  = services[s];
		fb_rpc_method                    *rows = calloc(svc->n_methods, sizeof(*rows));

		for (unsigned i = 0; i < svc->n_methods; i++)
			rows[i] = (fb_rpc_method){svc->methods[i].name, NULL, FB_ROLES_ALL};
		if (fb_rpc_registry_add(reg, svc, rows, svc->n_methods, NULL, &err) != 0)
			abort();
		/* the registry copies the rows */
		free(rows);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	nng_msg *reply = NULL;

	setup();
	fb_rpc_dispatch(reg, FB_ROLE_OPERATOR, data, size, 0, 0, &reply);
	if (reply == NULL)
		abort(); /* every input gets an answer */
	nng_msg_free(reply);
	for (size_t s = 0; s < NSERVICES; s++)
		for (unsigned i = 0; i < services[s]->n_methods; i++) {
			ProtobufCMessage *m =
			    protobuf_c_message_unpack(services[s]->methods[i].input, NULL, size, data);
			if (m != NULL)
				protobuf_c_message_free_unpacked(m, NULL);
		}
	return 0;
}

size_t
fuzz_builtin_seeds(uint8_t ***seeds, size_t **lens)
{
	static uint8_t *s[8];
	static size_t   l[8];
	size_t          n = 0;

	for (size_t k = 0; k < 4; k++) {
		Failback__Request env = FAILBACK__REQUEST__INIT;
		char              name[128];

		snprintf(name, sizeof(name), "%s.%s", services[k]->short_name,
		         services[k]->methods[0].name);
		env.method     = name;
		env.timeout_ms = 1000;
		s[n]           = malloc(failback__request__get_packed_size(&env) + 1);
		l[n]           = failback__request__pack(&env, s[n]);
		n++;
	}
	{
		Failback__ReadBlocksRequest r = FAILBACK__READ_BLOCKS_REQUEST__INIT;
		Failback__Request           env = FAILBACK__REQUEST__INIT;
		uint64_t                    blocks[3] = {1, 2, 300};
		uint8_t                     payload[256];

		r.recovery_point_identifier = "00000000-0000-4000-8000-000000000000";
		r.disk                      = "disk0.img";
		r.blocks                    = blocks;
		r.n_blocks                  = 3;
		env.method                  = "ResyncSource.ReadBlocks";
		env.payload.data            = payload;
		env.payload.len             = failback__read_blocks_request__pack(&r, payload);
		s[n]                        = malloc(failback__request__get_packed_size(&env) + 1);
		l[n]                        = failback__request__pack(&env, s[n]);
		n++;
	}
	*seeds = s;
	*lens  = l;
	return n;
}
