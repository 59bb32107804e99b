/*
 * cmd_primary.c - commands for the primary agent's PrimaryService (point
 * --url at the primary's control listener and --server-name at its name).
 */
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "primary.pb-c.h"

#define SVC (&failback__primary_service__descriptor)

static int
cmd_vm_add(ctl *c, int argc, char **argv)
{
	Failback__AddVirtualSystemRequest in    = FAILBACK__ADD_VIRTUAL_SYSTEM_REQUEST__INIT;
	char                            **disks = calloc((size_t)argc + 1, sizeof(char *));
	const char                       *name  = NULL;
	int                               code;

	for (int i = 0; i < argc; i++) {
		const char *v;

		if ((v = ctl_opt(argc, argv, &i, "--history")) != NULL) {
			char *end;
			unsigned long h = strtoul(v, &end, 10);
			if (*end != '\0' || h > 24) {
				free(disks);
				return ctl_usage(&ctl_primary_cmds[0], "--history is 0 to 24");
			}
			in.recovery_history = (uint32_t)h;
		} else if (name == NULL && argv[i][0] != '-') {
			name = argv[i];
		} else if (argv[i][0] != '-') {
			disks[in.n_disk_paths++] = argv[i];
		} else {
			free(disks);
			return ctl_usage(&ctl_primary_cmds[0], "unexpected argument");
		}
	}
	in.name = (char *)name;
	if (name == NULL || in.n_disk_paths == 0) {
		free(disks);
		return ctl_usage(&ctl_primary_cmds[0], "name the VM and at least one disk image");
	}
	in.disk_paths = disks;
	code          = ctl_call(c, SVC, "AddVirtualSystem", &in.base, NULL);
	free(disks);
	return code;
}

static int
cmd_vm_list(ctl *c, int argc, char **argv)
{
	Failback__PrimaryListVirtualSystemsRequest in =
	    FAILBACK__PRIMARY_LIST_VIRTUAL_SYSTEMS_REQUEST__INIT;

	(void)argv;
	if (argc != 0)
		return ctl_usage(&ctl_primary_cmds[1], "takes no arguments");
	return ctl_call(c, SVC, "ListVirtualSystems", &in.base, NULL);
}

static int
cmd_rp_create(ctl *c, int argc, char **argv)
{
	Failback__CreateRecoveryPointRequest in = FAILBACK__CREATE_RECOVERY_POINT_REQUEST__INIT;
	const char                          *vm = NULL;

	for (int i = 0; i < argc; i++) {
		const char *v;

		if ((v = ctl_opt(argc, argv, &i, "--type")) != NULL) {
			if (strcmp(v, "standard") == 0)
				in.type = FAILBACK__RECOVERY_POINT_TYPE__RPT_STANDARD;
			else if (strcmp(v, "application-consistent") == 0)
				in.type = FAILBACK__RECOVERY_POINT_TYPE__RPT_APPLICATION_CONSISTENT;
			else if (strcmp(v, "planned") == 0)
				in.type = FAILBACK__RECOVERY_POINT_TYPE__RPT_PLANNED;
			else
				return ctl_usage(&ctl_primary_cmds[2],
				                 "--type is standard, application-consistent or "
				                 "planned");
		} else if (vm == NULL && argv[i][0] != '-') {
			vm = argv[i];
		} else {
			return ctl_usage(&ctl_primary_cmds[2], "unexpected argument");
		}
	}
	if (vm == NULL)
		return ctl_usage(&ctl_primary_cmds[2], "name the VM");
	in.vm = (char *)vm;
	return ctl_call(c, SVC, "CreateRecoveryPoint", &in.base, NULL);
}

static int
cmd_rp_list(ctl *c, int argc, char **argv)
{
	Failback__PrimaryListRecoveryPointsRequest in =
	    FAILBACK__PRIMARY_LIST_RECOVERY_POINTS_REQUEST__INIT;

	if (argc != 1)
		return ctl_usage(&ctl_primary_cmds[3], "name one VM");
	in.vm = argv[0];
	return ctl_call(c, SVC, "ListRecoveryPoints", &in.base, NULL);
}

static int
cmd_rp_remove(ctl *c, int argc, char **argv)
{
	Failback__RemoveRecoveryPointRequest in = FAILBACK__REMOVE_RECOVERY_POINT_REQUEST__INIT;

	if (argc != 2)
		return ctl_usage(&ctl_primary_cmds[4], "name the VM and the recovery point");
	in.vm                        = argv[0];
	in.recovery_point_identifier = argv[1];
	return ctl_call(c, SVC, "RemoveRecoveryPoint", &in.base, NULL);
}

const ctl_cmd ctl_primary_cmds[] = {
    {"primary-vm", "add", "NAME DISK... [--history N]", "register a VM and its raw disk images",
     cmd_vm_add},
    {"primary-vm", "list", "", "VMs the primary protects", cmd_vm_list},
    {"primary-rp", "create", "VM [--type T]", "take a recovery point", cmd_rp_create},
    {"primary-rp", "list", "VM", "the primary's recovery points of VM", cmd_rp_list},
    {"primary-rp", "remove", "VM RP", "remove a recovery point", cmd_rp_remove},
    {NULL, NULL, NULL, NULL, NULL},
};
