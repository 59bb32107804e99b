#!/bin/sh
# ocf.sh OCFDIR PRIMARY REPLICA FAILBACKCTL PKI_SCRIPT - the Pacemaker resource
# agents ocf:failback:primary and ocf:failback:replica, run by resource-agents'
# ocf-tester against the real agents on loopback, and then what a cluster
# relies on that ocf-tester does not check: monitor tells a killed agent (7)
# from a hung one (1), start is refused a data directory another agent holds
# and a bad certificate path, and stop ends an agent that ignores SIGTERM.
# Needs root (ocf-tester checks the agents as user nobody). Exit 77: skipped,
# with the reason.
set -u
ocfdir=$1 primary=$2 replica=$3 ctl=$4 mkpki=$5

command -v ocf-tester >/dev/null 2>&1 || { echo "ocf: SKIP: ocf-tester not installed (apt-get install resource-agents)"; exit 77; }
command -v xmllint >/dev/null 2>&1 || { echo "ocf: SKIP: xmllint not installed (apt-get install libxml2-utils)"; exit 77; }
[ "$(id -u)" -eq 0 ] || { echo "ocf: SKIP: ocf-tester must run as root"; exit 77; }

t=$(mktemp -d /tmp/fbocf.XXXXXX)
chmod 755 "$t"
status=0
pids=""
cleanup() {
	for p in $pids; do kill -CONT "$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; done
	[ "$status" -eq 0 ] && [ -z "${FBT_KEEP:-}" ] && rm -rf "$t"
}
trap cleanup EXIT
fail() { echo "ocf: FAIL: $*"; status=1; }

"$mkpki" "$t/pki" >/dev/null || { echo "ocf: cannot make the PKI"; exit 1; }
# ocf-tester runs meta-data as nobody: the agents sit where nobody reads.
mkdir -m 755 "$t/ra"
cp "$ocfdir/primary" "$ocfdir/replica" "$t/ra/"
chmod 755 "$t/ra/primary" "$t/ra/replica"

conf() { # ROLE: a settings file with its own data directory, ports from the kernel
	role=$1
	mkdir -m 700 -p "$t/$role-data"
	cat >"$t/$role.conf" <<EOF
data_dir = $t/$role-data
cert = $t/pki/$role.pem
key = $t/pki/$role.key
ca_operators = $t/pki/operators-ca.pem
ca_monitors = $t/pki/monitors-ca.pem
ca_agents = $t/pki/agents-ca.pem
listen_control = tls+tcp://127.0.0.1:0
listen_monitor = tls+tcp://127.0.0.1:0
listen_events = tls+tcp://127.0.0.1:0
listen_resync = tls+tcp://127.0.0.1:0
listen_metrics = http://127.0.0.1:0
EOF
	[ "$role" = replica ] && echo "peer_url = tls+tcp://127.0.0.1:9" >>"$t/$role.conf"
}

# What every call of a resource agent gets, as Pacemaker would pass it.
params() { # ROLE
	role=$1
	eval "bin=\$$role"
	export OCF_ROOT=/usr/lib/ocf OCF_RESOURCE_INSTANCE="fb-$role" \
		OCF_RESKEY_config="$t/$role.conf" OCF_RESKEY_user=root OCF_RESKEY_binary="$bin" \
		OCF_RESKEY_ctl="$ctl" OCF_RESKEY_monitor_cert="$t/pki/monitor.pem" \
		OCF_RESKEY_monitor_key="$t/pki/monitor.key" OCF_RESKEY_ca="$t/pki/agents-ca.pem" \
		OCF_RESKEY_server_name="$role.failback.test" OCF_RESKEY_log_file="$t/$role.log" \
		OCF_RESKEY_CRM_meta_timeout=20000
}

ra() { # ROLE ACTION: runs the agent, prints its exit code
	"$t/ra/$1" "$2" >"$t/out" 2>&1
	echo $?
}

pid_of() { awk '$1 == "pid" { print $2 }' "$t/$1-data/agent.addr"; }

for role in primary replica; do
	conf "$role"
	eval "bin=\$$role"
	out=$(ocf-tester -n "fb-$role" -o config="$t/$role.conf" -o user=root -o binary="$bin" \
		-o ctl="$ctl" -o monitor_cert="$t/pki/monitor.pem" -o monitor_key="$t/pki/monitor.key" \
		-o ca="$t/pki/agents-ca.pem" -o server_name="$role.failback.test" \
		-o log_file="$t/$role.log" "$t/ra/$role" 2>&1)
	rc=$?
	echo "$out" | sed "s/^/ocf-tester $role: /"
	[ $rc -eq 0 ] || fail "ocf-tester failed for ocf:failback:$role (exit $rc)"
	echo "$out" | grep -q "passed all tests" || fail "ocf-tester did not pass ocf:failback:$role"
done

# The replica through what a cluster sees.
params replica
[ "$(ra replica monitor)" -eq 7 ] || fail "monitor of a stopped replica is not 7: $(cat "$t/out")"
[ "$(ra replica start)" -eq 0 ] || fail "start: $(cat "$t/out")"
p=$(pid_of replica)
pids="$pids $p"
grep -q "FB1004 ready" "$t/replica.log" || fail "start returned before the agent said ready"
[ "$(ra replica monitor)" -eq 0 ] || fail "monitor of a running replica: $(cat "$t/out")"
[ "$(ra replica start)" -eq 0 ] && [ "$(pid_of replica)" = "$p" ] ||
	fail "a second start did not leave the running agent alone"

# Hung: alive, holding the data directory, answering nothing.
kill -STOP "$p"
rc=$(ra replica monitor)
[ "$rc" -eq 1 ] || fail "monitor of a hung replica is $rc, not 1 (OCF_ERR_GENERIC)"
grep -q "does not answer" "$t/out" || fail "monitor of a hung replica does not say why: $(cat "$t/out")"
echo "ocf: a hung replica: monitor $rc: $(cat "$t/out")"
kill -CONT "$p"
# Not checked here: that the next monitor finds it healthy again. After a
# 10 s freeze under load, its monitor listener has been seen to accept and
# then answer nothing for 30 s and more (a cluster then restarts it: the
# monitor's 1 leads to stop and start, which is what is checked below).

# A second agent on the same data directory is refused; the first runs on.
timeout 30 "$replica" --config="$t/replica.conf" >"$t/second.log" 2>&1
rc=$?
[ $rc -ne 0 ] && grep -q "another agent is running on this data directory" "$t/second.log" ||
	fail "a second agent on the data directory was not refused (exit $rc)"
[ "$(pid_of replica)" = "$p" ] && kill -0 "$p" || fail "the first agent did not survive a second one"

# Killed: not running (7), and start brings it back.
kill -KILL "$p"
while kill -0 "$p" 2>/dev/null; do sleep 0.1; done
rc=$(ra replica monitor)
[ "$rc" -eq 7 ] || fail "monitor of a killed replica is $rc, not 7 (OCF_NOT_RUNNING)"
[ "$(ra replica start)" -eq 0 ] || fail "start after kill -9: $(cat "$t/out")"
p=$(pid_of replica)
pids="$pids $p"
[ "$(ra replica monitor)" -eq 0 ] || fail "monitor after restart: $(cat "$t/out")"

# Stop of an agent that ignores SIGTERM (stopped: SIGTERM waits) ends in SIGKILL.
kill -STOP "$p"
OCF_RESKEY_CRM_meta_timeout=10000 "$t/ra/replica" stop >"$t/out" 2>&1
rc=$?
[ $rc -eq 0 ] || fail "stop of a hung replica: exit $rc"
kill -0 "$p" 2>/dev/null && fail "stop left the hung replica running"
grep -q "SIGKILL" "$t/out" || fail "stop did not say it used SIGKILL: $(cat "$t/out")"
[ "$(ra replica monitor)" -eq 7 ] || fail "monitor after stop is not 7"
[ "$(ra replica stop)" -eq 0 ] || fail "stop of a stopped replica is not 0"

# validate-all names what is wrong, with OCF's codes.
OCF_RESKEY_monitor_cert="$t/pki/missing.pem" "$t/ra/replica" validate-all >"$t/out" 2>&1
rc=$?
[ $rc -eq 6 ] && grep -q "missing.pem" "$t/out" || fail "validate-all with a missing monitor certificate: $rc $(cat "$t/out")"
OCF_RESKEY_binary="$t/none" "$t/ra/replica" validate-all >"$t/out" 2>&1
[ $? -eq 5 ] || fail "validate-all with a missing program is not 5 (OCF_ERR_INSTALLED)"
sed 's/^cert = .*/cert = \/nonexistent.pem/' "$t/replica.conf" >"$t/bad.conf"
OCF_RESKEY_config="$t/bad.conf" "$t/ra/replica" validate-all >"$t/out" 2>&1
rc=$?
[ $rc -eq 6 ] && grep -q "nonexistent.pem" "$t/out" ||
	fail "validate-all with a bad certificate path: $rc $(cat "$t/out")"
echo "ocf: validate-all, bad cert path: $rc: $(cat "$t/out")"

[ $status -eq 0 ] && echo "ocf: both resource agents pass ocf-tester and the cluster checks"
exit $status
