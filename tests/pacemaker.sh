#!/bin/sh
# pacemaker.sh OCFDIR PRIMARY REPLICA FAILBACKCTL PKI_SCRIPT - a real cluster:
# Corosync (knet on loopback) and Pacemaker, one node, in mount, network and
# pid namespaces this script makes, with the replica agent as the resource
# ocf:failback:replica (the Filesystem-free variant: its data directory is
# a plain directory). A failback runs; the agent is killed with SIGKILL in
# the middle of the transfer; Pacemaker's monitor finds it not running and
# restarts it; the job resumes from its checkpoint and the recovery disk ends
# byte-exact. The primary agent runs beside the cluster.
#
# Nothing of the host's cluster state is touched: /etc/corosync,
# /var/lib/pacemaker, /var/lib/corosync, /var/log/pacemaker, /run, /dev/shm
# and /usr/lib/ocf/resource.d are private tmpfs mounts, the loopback is the
# namespace's own, and every process ends with the namespace.
# Needs root and unshare(1). Exit 77: skipped, with the reason.
set -u
ocfdir=$1 primary=$2 replica=$3 ctl=$4 mkpki=$5

if [ -z "${FB_PCMK_IN_NS:-}" ]; then
	for c in corosync pacemakerd cibadmin crm_resource crm_failcount crm_attribute unshare ip; do
		command -v "$c" >/dev/null 2>&1 ||
			{ echo "pacemaker: SKIP: $c not installed (apt-get install pacemaker corosync)"; exit 77; }
	done
	[ "$(id -u)" -eq 0 ] || { echo "pacemaker: SKIP: needs root (namespaces, Pacemaker's daemons)"; exit 77; }
	[ -d /usr/lib/ocf/resource.d ] || { echo "pacemaker: SKIP: no /usr/lib/ocf/resource.d"; exit 77; }
	unshare --mount --net --pid --fork --mount-proc true 2>/dev/null ||
		{ echo "pacemaker: SKIP: cannot make mount, network and pid namespaces here (unshare failed)"; exit 77; }
	FB_PCMK_IN_NS=1 exec unshare --mount --net --pid --fork --mount-proc sh "$0" "$@"
fi

t=$(mktemp -d /tmp/fbpcmk.XXXXXX)
chmod 755 "$t"
status=0
fail() { echo "pacemaker: FAIL: $*"; status=1; }
finish() {
	if [ "$status" -ne 0 ]; then
		for f in "$t/replica.log" "$t/corosync.log" "$t/pacemaker.log"; do
			[ -f "$f" ] && { echo "--- end of $f"; tail -n 30 "$f"; }
		done
		crm_mon -1 2>&1 | sed 's/^/crm_mon: /'
	fi
	[ "$status" -eq 0 ] && [ -z "${FBT_KEEP:-}" ] && rm -rf "$t"
	exit "$status"
}
trap finish EXIT
# bounded waits: up to $1 tenths of a second for the command to succeed
until_ok() {
	n=$1
	shift
	while [ "$n" -gt 0 ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
		n=$((n - 1))
	done
	return 1
}

ip link set lo up
for d in /etc/corosync /var/lib/pacemaker /var/lib/corosync /var/log/pacemaker /run /dev/shm \
	/usr/lib/ocf/resource.d; do
	mkdir -p "$d" && mount -t tmpfs -o mode=0755 tmpfs "$d" ||
		{ echo "pacemaker: SKIP: cannot mount a private tmpfs on $d"; status=77; exit 77; }
done
chmod 1777 /dev/shm
mkdir -p /var/lib/pacemaker/cib /var/lib/pacemaker/pengine /var/lib/pacemaker/blackbox \
	/var/lib/pacemaker/cores /run/pacemaker /run/corosync /usr/lib/ocf/resource.d/failback
chown -R hacluster:haclient /var/lib/pacemaker /var/log/pacemaker /run/pacemaker
cp "$ocfdir/replica" /usr/lib/ocf/resource.d/failback/replica
chmod 755 /usr/lib/ocf/resource.d/failback/replica
cat >/etc/corosync/corosync.conf <<EOF
totem {
	version: 2
	cluster_name: fbtest
	transport: knet
	crypto_cipher: none
	crypto_hash: none
}
nodelist {
	node {
		ring0_addr: 127.0.0.1
		name: node1
		nodeid: 1
	}
}
quorum {
	provider: corosync_votequorum
}
logging {
	to_logfile: yes
	logfile: $t/corosync.log
	to_syslog: no
	to_stderr: no
}
EOF
export PCMK_logfile="$t/pacemaker.log"
corosync -f >"$t/corosync.out" 2>&1 &
until_ok 300 corosync-cfgtool -s || { fail "corosync did not start: $(cat "$t/corosync.out")"; exit 1; }
pacemakerd -f >"$t/pacemakerd.out" 2>&1 &
online() { crm_mon -1 2>/dev/null | grep -q "Online: \[ node1 \]"; }
until_ok 900 online || { fail "Pacemaker did not bring node1 online"; exit 1; }
crm_attribute -t crm_config -n stonith-enabled -v false >/dev/null
echo "pacemaker: corosync and pacemakerd run; node1 is online"

# The PKI, the primary agent (outside the cluster) and its VM.
"$mkpki" "$t/pki" >/dev/null || { fail "cannot make the PKI"; exit 1; }
pki=$t/pki
mkdir -m 700 "$t/primary" "$t/replica"
"$primary" --data-dir="$t/primary" --cert="$pki/primary.pem" --key="$pki/primary.key" \
	--ca-operators="$pki/operators-ca.pem" --ca-monitors="$pki/monitors-ca.pem" \
	--ca-agents="$pki/agents-ca.pem" >"$t/primary.log" 2>&1 &
until_ok 200 test -s "$t/primary/agent.addr" || { fail "the primary agent did not start"; exit 1; }
P() { "$ctl" --config= --url=tls+tcp://127.0.0.1:7410 --server-name=primary.failback.test \
	--ca="$pki/agents-ca.pem" --cert="$pki/operator.pem" --key="$pki/operator.key" "$@"; }
R() { "$ctl" --config= --url=tls+tcp://127.0.0.1:7400 --server-name=replica.failback.test \
	--ca="$pki/agents-ca.pem" --cert="$pki/operator.pem" --key="$pki/operator.key" \
	--events-url=tls+tcp://127.0.0.1:7402 "$@"; }
img=$t/web.img
head -c 24M /dev/urandom >"$img" && truncate -s 64M "$img"
P primary-vm add web "$img" >/dev/null && P primary-rp create web >/dev/null ||
	{ fail "could not register the VM or take its point"; exit 1; }
want=$(sha256sum "$img" | cut -d' ' -f1)

# The replica agent as a cluster resource.
cat >"$t/replica.conf" <<EOF
data_dir = $t/replica
cert = $pki/replica.pem
key = $pki/replica.key
ca_operators = $pki/operators-ca.pem
ca_monitors = $pki/monitors-ca.pem
ca_agents = $pki/agents-ca.pem
peer_url = tls+tcp://127.0.0.1:7413
max_transfer_rate = 4
EOF
cibadmin -C -o resources -X "<primitive id=\"fbr\" class=\"ocf\" provider=\"failback\" type=\"replica\">
  <instance_attributes id=\"fbr-params\">
    <nvpair id=\"fbr-config\" name=\"config\" value=\"$t/replica.conf\"/>
    <nvpair id=\"fbr-user\" name=\"user\" value=\"root\"/>
    <nvpair id=\"fbr-binary\" name=\"binary\" value=\"$replica\"/>
    <nvpair id=\"fbr-ctl\" name=\"ctl\" value=\"$ctl\"/>
    <nvpair id=\"fbr-mcert\" name=\"monitor_cert\" value=\"$pki/monitor.pem\"/>
    <nvpair id=\"fbr-mkey\" name=\"monitor_key\" value=\"$pki/monitor.key\"/>
    <nvpair id=\"fbr-ca\" name=\"ca\" value=\"$pki/agents-ca.pem\"/>
    <nvpair id=\"fbr-log\" name=\"log_file\" value=\"$t/replica.log\"/>
  </instance_attributes>
  <operations>
    <op id=\"fbr-start\" name=\"start\" timeout=\"60s\" interval=\"0s\"/>
    <op id=\"fbr-stop\" name=\"stop\" timeout=\"30s\" interval=\"0s\"/>
    <op id=\"fbr-monitor\" name=\"monitor\" timeout=\"10s\" interval=\"2s\"/>
  </operations>
</primitive>" || { fail "cibadmin refused the resource"; exit 1; }
running() { crm_resource --locate -r fbr 2>/dev/null | grep -q "is running on: node1"; }
until_ok 600 running || { fail "Pacemaker did not start ocf:failback:replica"; exit 1; }
until_ok 300 R status || { fail "the replica agent Pacemaker started does not answer"; exit 1; }
pid_of() { awk '$1 == "pid" { print $2 }' "$t/replica/agent.addr" 2>/dev/null; }
first=$(pid_of)
echo "pacemaker: Pacemaker started ocf:failback:replica (pid $first)"

# A failback with work: the recovery VM wrote 16 MiB (4 s at 4 MiB/s).
R replicate web --wait >/dev/null && R failover web --wait >/dev/null &&
	R failover-commit web --wait >/dev/null || { fail "replicate/failover/commit: $(R job list 2>&1)"; exit 1; }
disk=$(R vm show web | awk '$1 == "path:" { print $2; exit }')
[ -f "$disk" ] || { fail "no recovery disk in vm show"; exit 1; }
dd if=/dev/urandom of="$disk" bs=64k count=256 seek=64 conv=notrunc status=none
job=$(R failback web | sed -n 's/.*InstanceID="\([0-9a-f-]*\)".*/\1/p')
[ -n "$job" ] || { fail "failback was not accepted"; exit 1; }
moving() { R --json job show "$job" | grep -q '"phase":"Transferring"' &&
	! R --json job show "$job" | grep -q '"blocks_done":0,'; }
until_ok 600 moving || { fail "the failback never reached the transfer"; exit 1; }
pct=$(R --json job show "$job" | sed -n 's/.*"percent_complete":\([0-9]*\).*/\1/p')
kill -KILL "$first"
echo "pacemaker: failback $job at ${pct:-?}%: kill -9 of the agent (pid $first)"

# Pacemaker's monitor finds it not running (7) and restarts it.
restarted() { p=$(pid_of); [ -n "$p" ] && [ "$p" != "$first" ] && kill -0 "$p" && R status; }
until_ok 900 restarted || { fail "Pacemaker did not restart the killed agent"; exit 1; }
fc=$(crm_failcount --query -r fbr -N node1 2>/dev/null | sed -n 's/.*value=\([0-9]*\).*/\1/p')
[ "${fc:-0}" -ge 1 ] || fail "no failure recorded for fbr (failcount '${fc:-}')"
grep -q "FB5005 resuming job $job" "$t/replica.log" || fail "the restarted agent did not resume job $job"
echo "pacemaker: the monitor found it not running (failcount ${fc:-?}); Pacemaker restarted it (pid $(pid_of))"

R job wait "$job" >/dev/null || fail "job $job did not complete: $(R job show "$job" 2>&1 | tail -n 5)"
got=$(sha256sum "$disk" | cut -d' ' -f1)
[ "$got" = "$want" ] || fail "the recovery disk is $got, not the primary's $want"
grep -q "resuming from its checkpoint" "$t/replica.log" || fail "the job started over instead of resuming"
[ $status -eq 0 ] && echo "pacemaker: job $job completed after the restart; the recovery disk is byte-exact ($got)"
exit $status
