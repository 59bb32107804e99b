#!/bin/sh
# docs.sh DISTDIR FAILBACKCTL PRIMARY REPLICA - the generated manuals and the
# bash completion say what the programs' --help says: every option of each
# program is in its man page, every settings key of each agent in
# failback.conf(5), and the completion offers the commands, their
# subcommands and the options.
set -u
d=$1 ctl=$2 primary=$3 replica=$4
status=0
fail() { echo "docs: $*"; status=1; }
for page in "$d/failbackctl.1:$ctl" "$d/failback-primary.8:$primary" "$d/failback-replica.8:$replica"; do
	man=${page%%:*} prog=${page#*:}
	[ -s "$man" ] || { fail "$man missing"; continue; }
	grep -q '^\.TH' "$man" || fail "$man is not a man page"
	for opt in $("$prog" --help | awk '/^  --/ {print $1}'); do
		grep -q -- "$(echo "$opt" | sed 's/-/\\\\-/g')" "$man" || fail "$man lacks $opt"
	done
done
for prog in "$primary" "$replica"; do
	for key in $("$prog" --help | awk '/^  --/ {k = substr($1, 3); gsub(/-/, "_", k); print k}'); do
		case $key in help | version | check_config | config | worker_job) continue ;; esac
		grep -q "^\.B $key\$" "$d/failback.conf.5" || fail "failback.conf.5 lacks $key"
	done
done
if command -v bash >/dev/null 2>&1; then
	got=$(bash -c '. "$1"
		c() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=(); _failbackctl; echo "${COMPREPLY[*]}"; }
		c failbackctl pri; c failbackctl job ""; c failbackctl --json primary-rp c; c failbackctl failback web --w' \
		_ "$d/failbackctl")
	want="primary-rp primary-vm
list show error cancel wait
create cancel
--wait"
	[ "$got" = "$want" ] || fail "completion gave:
$got
instead of:
$want"
fi
[ $status -eq 0 ] && echo "docs: man pages, failback.conf(5) and completion match --help"
exit $status
