/*
 * main.c - failback-primary: the agent on the original primary host.
 *
 * It keeps each VM's disks and recovery points, lets operators register
 * VMs and take points (PrimaryService, control listener), and serves
 * recovery points to authorised replica agents (ResyncSource, resync
 * listener), and takes on or hands over the primary role of a VM when a
 * relationship is reversed (RelationshipService, resync listener). Every
 * method has its role set decided here, including the
 * ones not built yet, which answer Not Supported.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "failback/agent.h"
#include "failback/log.h"
#include "failback/tracker.h"
#include "primary.h"
#include "primary.pb-c.h"
#include "relationship.pb-c.h"
#include "resync.pb-c.h"

static primary the_primary;
static char   *local_replica_name;
static char   *max_scan_rate;
static char   *change_tracking;

static const fb_config_key primary_keys[] = {
    {"local_replica_name", &local_replica_name,
     "DNS name in this host's replica agent's certificate: the only agent that may hand "
     "this primary a VM when reversing (default replica.failback.test)"},
    {"max_scan_rate", &max_scan_rate,
     "MiB/s a recovery point may read from the VM's disks, so taking one leaves the VM "
     "its I/O (default 0: no cap)"},
    {"change_tracking", &change_tracking,
     "off (default) or qcow2: a dirty bitmap started at each point, in a qcow2 wrapper over "
     "each raw disk or in a qcow2 disk itself, so the next point reads only what the VM wrote "
     "and, after a failover, this site's failback home reads only what it wrote since its "
     "last point"},
};

static uint32_t
primary_check(fb_err *err)
{
	if (local_replica_name == NULL &&
	    (local_replica_name = strdup("replica.failback.test")) == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	if (local_replica_name[0] == '\0' || strlen(local_replica_name) > 255)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "--local-replica-name: a DNS name of at most 255 characters");
	the_primary.local_replica_name = local_replica_name;
	if (max_scan_rate != NULL) {
		char         *end;
		unsigned long v;

		errno = 0;
		v     = strtoul(max_scan_rate, &end, 10);
		if (max_scan_rate[0] < '0' || max_scan_rate[0] > '9' || *end != '\0' || errno != 0 ||
		    v > 1048576)
			return fb_err_set(err, FB_RV_INVALID_PARAMETER,
			                  "--max-scan-rate: MiB/s, 0 (no cap) to 1048576, not \"%s\"",
			                  max_scan_rate);
		the_primary.scan_rate = (uint64_t)v << 20;
	}
	if (change_tracking != NULL && strcmp(change_tracking, "qcow2") != 0 &&
	    strcmp(change_tracking, "off") != 0)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "--change-tracking: '%s' is not qcow2 or off", change_tracking);
	the_primary.tracking = change_tracking != NULL && strcmp(change_tracking, "qcow2") == 0;
	return FB_RV_OK;
}

static uint32_t
primary_setup(fb_agent *agent, fb_rpc_registry *reg, fb_err *err)
{
	const char *dir = fb_agent_settings_get(agent)->data_dir;
	char        path[4096];
	uint32_t    rv;

	the_primary.agent = agent;
	if (the_primary.tracking && !tracker_available()) {
		fb_log_warn("FB4038", "change tracking is qcow2 but qemu-img or qemu-nbd cannot be run "
		            "(install qemu-utils): disks are not tracked and every point reads its "
		            "disks whole");
		the_primary.tracking = 0;
	}
	primary_resync_init();
	if ((rv = primary_sessions_open(dir, err)) != FB_RV_OK)
		return rv;
	snprintf(path, sizeof(path), "%s/state.db", dir);
	if ((rv = fb_db_open_schema(&the_primary.db, path, &primary_schema, err)) != FB_RV_OK ||
	    (rv = points_recover(&the_primary, err)) != FB_RV_OK)
		return rv;
	snprintf(path, sizeof(path), "%s/blocks", dir);
	if ((rv = fb_store_open(&the_primary.store, the_primary.db, path, 0, err)) != FB_RV_OK)
		return rv;
	if ((rv = fb_rpc_registry_add(reg, &failback__primary_service__descriptor,
	                              primary_control_methods, primary_control_nmethods,
	                              &the_primary, err)) != FB_RV_OK)
		return rv;
	if ((rv = fb_rpc_registry_add(reg, &failback__relationship_service__descriptor,
	                              primary_relationship_methods, primary_relationship_nmethods,
	                              &the_primary, err)) != FB_RV_OK)
		return rv;
	return fb_rpc_registry_add(reg, &failback__resync_source__descriptor,
	                           primary_resync_methods, primary_resync_nmethods, &the_primary,
	                           err);
}

static void
primary_metrics_hook(fb_agent *agent, fb_metrics *m)
{
	(void)agent;
	primary_metrics(&the_primary, m);
}

static const fb_agent_spec primary_spec = {
    .prog           = "failback-primary",
    .role           = "primary",
    .listen_control = "tls+tcp://127.0.0.1:7410",
    .listen_monitor = "tls+tcp://127.0.0.1:7411",
    .listen_events  = "tls+tcp://127.0.0.1:7412",
    .listen_resync  = "tls+tcp://127.0.0.1:7413",
    .listen_metrics = "http://127.0.0.1:7414",
    .setup          = primary_setup,
    .keys           = primary_keys,
    .nkeys          = sizeof(primary_keys) / sizeof(primary_keys[0]),
    .check          = primary_check,
    .metrics        = primary_metrics_hook,
};

int
main(int argc, char **argv)
{
	fb_agent_main(argc, argv, &primary_spec);
}
