/*
 * rpc_test.c - the dispatcher: envelope decoding, method lookup through the
 * protoc-c descriptors, role checks, deadlines, handler outcomes and the
 * reply size limit. Every case decodes the reply bytes a caller would get.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent.pb-c.h"
#include "failback/rpc.h"
#include "replica.pb-c.h"
#include "rpc.pb-c.h"

static int handler_runs;

static uint32_t
status_ok(void *arg, fb_rpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
	Failback__GetAgentStatusResponse *r = (Failback__GetAgentStatusResponse *)out;

	(void)arg;
	(void)in;
	handler_runs++;
	r->agent       = fb_rpc_strdup(call, "unit");
	r->caller_role = (char *)fb_role_name(fb_rpc_call_role(call));
	return FB_RV_OK;
}

static uint32_t
get_vm_fails(void *arg, fb_rpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
	const Failback__VmRef *ref = (const Failback__VmRef *)in;

	(void)arg;
	(void)out;
	handler_runs++;
	return fb_rpc_fail(call, FB_RV_FILE_NOT_FOUND, "no VM named '%s'", ref->vm);
}

static uint32_t
list_too_big(void *arg, fb_rpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
	Failback__ListVirtualSystemsResponse *r = (Failback__ListVirtualSystemsResponse *)out;
	size_t                                n = 3000;

	(void)arg;
	(void)in;
	r->vms   = fb_rpc_alloc(call, n * sizeof(*r->vms));
	r->n_vms = n;
	for (size_t i = 0; i < n; i++) {
		Failback__VirtualSystem *v = fb_rpc_alloc(call, sizeof(*v));
		char                    *name = fb_rpc_alloc(call, 4096);

		failback__virtual_system__init(v);
		memset(name, 'x', 4095);
		v->name   = name;
		r->vms[i] = v;
	}
	return FB_RV_OK;
}

static const fb_rpc_method agent_rows[] = {{"GetAgentStatus", status_ok, FB_ROLES_ALL}};
static const fb_rpc_method replica_rows[] = {
    {"InitiateFailback", NULL, FB_ROLE_OPERATOR},
    {"InitiateFailover", NULL, FB_ROLE_OPERATOR},
    {"RevertFailover", NULL, FB_ROLE_OPERATOR},
    {"CommitFailover", NULL, FB_ROLE_OPERATOR},
    {"Replicate", NULL, FB_ROLE_OPERATOR},
    {"ReverseReplicationRelationship", NULL, FB_ROLE_OPERATOR},
    {"GetVirtualSystem", get_vm_fails, FB_ROLES_READ},
    {"ListVirtualSystems", list_too_big, FB_ROLES_READ},
    {"ListRecoveryPoints", NULL, FB_ROLES_READ},
    {"GetJob", NULL, FB_ROLES_READ},
    {"ListJobs", NULL, FB_ROLES_READ},
    {"RequestJobStateChange", NULL, FB_ROLE_OPERATOR},
    {"GetJobError", NULL, FB_ROLES_READ},
    {"RemoveVirtualSystem", NULL, FB_ROLE_OPERATOR},
    {"EstimateFailback", NULL, FB_ROLE_OPERATOR},
};

static fb_rpc_registry *reg;

static int
setup(void **state)
{
	fb_err err;

	(void)state;
	if (fb_rpc_registry_create(&reg, &err) != 0)
		return -1;
	if (fb_rpc_registry_add(reg, &failback__agent_service__descriptor, agent_rows, 1, NULL,
	                        &err) != 0)
		return -1;
	return fb_rpc_registry_add(reg, &failback__replication_service__descriptor, replica_rows,
	                           sizeof(replica_rows) / sizeof(replica_rows[0]), NULL, &err);
}

static int
teardown(void **state)
{
	(void)state;
	fb_rpc_registry_destroy(reg);
	return 0;
}

/* Packs an envelope around payload, dispatches it, returns the decoded reply. */
static Failback__Reply *
call(unsigned role, const char *method, const ProtobufCMessage *in, uint32_t timeout_ms,
     uint64_t recv_ms, uint64_t now_ms)
{
	Failback__Request env = FAILBACK__REQUEST__INIT;
	uint8_t           payload[4096], buf[8192];
	nng_msg          *reply;
	Failback__Reply  *r;
	uint32_t          rv;

	env.method       = (char *)method;
	env.timeout_ms   = timeout_ms;
	env.payload.data = payload;
	env.payload.len  = in ? protobuf_c_message_pack(in, payload) : 0;
	rv = fb_rpc_dispatch(reg, role, buf, failback__request__pack(&env, buf), recv_ms, now_ms,
	                     &reply);
	assert_non_null(reply);
	r = failback__reply__unpack(NULL, nng_msg_len(reply), nng_msg_body(reply));
	nng_msg_free(reply);
	assert_non_null(r);
	assert_int_equal(r->return_value, rv);
	return r;
}

static void
registered_method_runs_and_reply_decodes(void **state)
{
	Failback__GetAgentStatusRequest   in = FAILBACK__GET_AGENT_STATUS_REQUEST__INIT;
	Failback__Reply                  *r;
	Failback__GetAgentStatusResponse *out;

	(void)state;
	r = call(FB_ROLE_MONITOR, "AgentService.GetAgentStatus", &in.base, 1000, 0, 0);
	assert_int_equal(r->return_value, FB_RV_OK);
	out = failback__get_agent_status_response__unpack(NULL, r->payload.len, r->payload.data);
	assert_non_null(out);
	assert_string_equal(out->agent, "unit");
	assert_string_equal(out->caller_role, "monitor");
	failback__get_agent_status_response__free_unpacked(out, NULL);
	failback__reply__free_unpacked(r, NULL);
}

static void
unknown_method_and_unknown_service_are_not_supported(void **state)
{
	const char *names[] = {"AgentService.Nope", "Nope.GetAgentStatus", "GetAgentStatus", ""};

	(void)state;
	for (int i = 0; i < 4; i++) {
		Failback__Reply *r = call(FB_ROLE_OPERATOR, names[i], NULL, 1000, 0, 0);
		assert_int_equal(r->return_value, FB_RV_NOT_SUPPORTED);
		assert_non_null(strstr(r->description, "unknown method"));
		failback__reply__free_unpacked(r, NULL);
	}
}

static void
declared_method_without_handler_is_not_supported(void **state)
{
	Failback__InitiateFailbackRequest in = FAILBACK__INITIATE_FAILBACK_REQUEST__INIT;
	Failback__Reply                  *r;

	(void)state;
	r = call(FB_ROLE_OPERATOR, "ReplicationService.InitiateFailback", &in.base, 1000, 0, 0);
	assert_int_equal(r->return_value, FB_RV_NOT_SUPPORTED);
	assert_non_null(strstr(r->description, "not implemented"));
	failback__reply__free_unpacked(r, NULL);
}

static void
role_not_in_method_row_is_access_denied_and_handler_never_runs(void **state)
{
	Failback__VmRef  in = FAILBACK__VM_REF__INIT;
	Failback__Reply *r;

	(void)state;
	handler_runs = 0;
	r = call(FB_ROLE_AGENT, "ReplicationService.GetVirtualSystem", &in.base, 1000, 0, 0);
	assert_int_equal(r->return_value, FB_RV_ACCESS_DENIED);
	assert_string_equal(r->description,
	                    "the agent role may not call ReplicationService.GetVirtualSystem");
	assert_int_equal(handler_runs, 0);
	failback__reply__free_unpacked(r, NULL);
	r = call(FB_ROLE_MONITOR, "ReplicationService.InitiateFailback", NULL, 1000, 0, 0);
	assert_int_equal(r->return_value, FB_RV_ACCESS_DENIED);
	failback__reply__free_unpacked(r, NULL);
	r = call(0, "AgentService.GetAgentStatus", NULL, 1000, 0, 0);
	assert_int_equal(r->return_value, FB_RV_ACCESS_DENIED);
	failback__reply__free_unpacked(r, NULL);
}

static void
handler_failure_carries_code_and_description(void **state)
{
	Failback__VmRef  in = FAILBACK__VM_REF__INIT;
	Failback__Reply *r;

	(void)state;
	in.vm = "web01";
	r = call(FB_ROLE_OPERATOR, "ReplicationService.GetVirtualSystem", &in.base, 1000, 0, 0);
	assert_int_equal(r->return_value, FB_RV_FILE_NOT_FOUND);
	assert_string_equal(r->description, "no VM named 'web01'");
	assert_int_equal(r->payload.len, 0);
	failback__reply__free_unpacked(r, NULL);
}

static void
call_past_its_deadline_is_timeout_without_running(void **state)
{
	Failback__Reply *r;

	(void)state;
	handler_runs = 0;
	r = call(FB_ROLE_OPERATOR, "AgentService.GetAgentStatus", NULL, 100, 5000, 5100);
	assert_int_equal(r->return_value, FB_RV_TIMEOUT);
	assert_int_equal(handler_runs, 0);
	failback__reply__free_unpacked(r, NULL);
	r = call(FB_ROLE_OPERATOR, "AgentService.GetAgentStatus", NULL, 100, 5000, 5099);
	assert_int_equal(r->return_value, FB_RV_OK);
	assert_int_equal(handler_runs, 1);
	failback__reply__free_unpacked(r, NULL);
}

static void
malformed_envelope_and_payload_are_invalid_parameter(void **state)
{
	static const uint8_t junk[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f};
	Failback__Request    env    = FAILBACK__REQUEST__INIT;
	uint8_t              buf[256];
	nng_msg             *reply;
	Failback__Reply     *r;

	(void)state;
	assert_int_equal(fb_rpc_dispatch(reg, FB_ROLE_OPERATOR, junk, sizeof(junk), 0, 0, &reply),
	                 FB_RV_INVALID_PARAMETER);
	r = failback__reply__unpack(NULL, nng_msg_len(reply), nng_msg_body(reply));
	assert_non_null(strstr(r->description, "malformed request envelope"));
	failback__reply__free_unpacked(r, NULL);
	nng_msg_free(reply);

	env.method       = "ReplicationService.GetVirtualSystem";
	env.payload.data = (uint8_t *)junk;
	env.payload.len  = sizeof(junk);
	assert_int_equal(fb_rpc_dispatch(reg, FB_ROLE_OPERATOR, buf,
	                                 failback__request__pack(&env, buf), 0, 0, &reply),
	                 FB_RV_INVALID_PARAMETER);
	nng_msg_free(reply);
}

static void
reply_over_message_limit_is_refused_not_sent(void **state)
{
	Failback__Reply *r;

	(void)state;
	r = call(FB_ROLE_OPERATOR, "ReplicationService.ListVirtualSystems", NULL, 1000, 0, 0);
	assert_int_equal(r->return_value, FB_RV_FAILED);
	assert_non_null(strstr(r->description, "exceeds the message limit"));
	failback__reply__free_unpacked(r, NULL);
}

static void
registry_requires_every_method_exactly_once(void **state)
{
	fb_rpc_registry           *r2;
	fb_err                     err;
	static const fb_rpc_method twice[] = {{"GetAgentStatus", NULL, FB_ROLES_ALL}};
	static const fb_rpc_method wrong[] = {{"GetStatus", NULL, FB_ROLES_ALL}};

	(void)state;
	assert_int_equal(fb_rpc_registry_create(&r2, &err), 0);
	assert_int_equal(fb_rpc_registry_add(r2, &failback__replication_service__descriptor, twice,
	                                     1, NULL, &err),
	                 FB_RV_INVALID_PARAMETER);
	assert_non_null(strstr(err.msg, "declares 15 methods"));
	assert_int_equal(fb_rpc_registry_add(r2, &failback__agent_service__descriptor, wrong, 1,
	                                     NULL, &err),
	                 FB_RV_INVALID_PARAMETER);
	assert_non_null(strstr(err.msg, "has no method GetStatus"));
	fb_rpc_registry_destroy(r2);
}

static void
return_values_have_hyperv_names(void **state)
{
	(void)state;
	assert_string_equal(fb_rv_name(4096), "Method Parameters Checked - Job Started");
	assert_string_equal(fb_rv_name(32774), "System is in use");
	assert_string_equal(fb_rv_name(32779), "File not found");
	assert_string_equal(fb_rv_name(12345), "Unknown");
	assert_int_equal(fb_rv_from_nng(NNG_ETIMEDOUT), FB_RV_TIMEOUT);
	assert_int_equal(fb_rv_from_nng(NNG_ECONNREFUSED), FB_RV_NOT_AVAILABLE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(registered_method_runs_and_reply_decodes),
	    cmocka_unit_test(unknown_method_and_unknown_service_are_not_supported),
	    cmocka_unit_test(declared_method_without_handler_is_not_supported),
	    cmocka_unit_test(role_not_in_method_row_is_access_denied_and_handler_never_runs),
	    cmocka_unit_test(handler_failure_carries_code_and_description),
	    cmocka_unit_test(call_past_its_deadline_is_timeout_without_running),
	    cmocka_unit_test(malformed_envelope_and_payload_are_invalid_parameter),
	    cmocka_unit_test(reply_over_message_limit_is_refused_not_sent),
	    cmocka_unit_test(registry_requires_every_method_exactly_once),
	    cmocka_unit_test(return_values_have_hyperv_names),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
