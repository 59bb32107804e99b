#!/bin/sh
# conf5.sh PRIMARY REPLICA VERSION > failback.conf.5 - the settings files'
# manual, made from the agents' own --help (the one source of their keys).
set -eu
primary=$1 replica=$2 version=$3
keys() { # the "--key  text" lines of an agent's --help, as "key<TAB>text"
	"$1" --help | awk '/^  --/ {
		k = substr($1, 3); $1 = ""; sub(/^ +/, "")
		if (k == "help" || k == "version" || k == "check-config" || k == "config" || k == "worker-job") next
		gsub(/-/, "_", k); print k "\t" $0 }'
}
section() {
	keys "$1" | while IFS="$(printf '\t')" read -r k text; do
		printf '.TP\n.B %s\n%s\n' "$k" "$(printf '%s' "$text" | sed 's/\\/\\\\/g; s/^\./\\\&./')"
	done
}
cat <<HDR
.\\" Generated from the agents' --help by dist/man/conf5.sh; do not edit.
.TH FAILBACK.CONF 5 "" "failback $version" "File Formats"
.SH NAME
failback.conf \\- settings files of failback-primary and failback-replica
.SH SYNOPSIS
.B /etc/failback/primary.conf
.br
.B /etc/failback/replica.conf
.SH DESCRIPTION
Each agent reads the file given with
.B \\-\\-config
before its flags, which override it. A line is
.IR key " = " value ;
empty lines and lines starting with # are ignored, and so is the rest of a line
from a # that follows a blank. A value may be put in double quotes, which keeps
# and blanks in it (\(dq\(dq is empty). An unknown key stops the agent,
naming the line. Every key is also a flag, with - for _:
.B data_dir
is
.BR \\-\\-data\\-dir .
.B failback-primary \\-\\-check\\-config \\-\\-config FILE
checks a file and the certificates it names without starting.
.SH "KEYS OF FAILBACK-PRIMARY"
HDR
section "$primary"
echo '.SH "KEYS OF FAILBACK-REPLICA"'
section "$replica"
cat <<FTR
.SH FILES
.TP
.I /etc/failback/failbackctl.conf
read by
.BR failbackctl (1)
when neither \\-\\-config nor \\\$FAILBACKCTL_CONFIG names a file; its keys are
failbackctl's options.
.SH "SEE ALSO"
.BR failback-primary (8),
.BR failback-replica (8),
.BR failbackctl (1)
FTR
