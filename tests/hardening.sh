#!/bin/sh
# hardening.sh BINARY... - each installed program is built hardened: a PIE,
# full RELRO (GNU_RELRO and BIND_NOW), the stack protector and fortified
# libc calls linked in. Fails naming the program and what it lacks.
set -u
status=0
for bin in "$@"; do
	name=$(basename "$bin")
	lack=""
	readelf -h "$bin" | grep -q 'Type:[[:space:]]*DYN' || lack="$lack PIE"
	readelf -lW "$bin" | grep -q GNU_RELRO || lack="$lack RELRO"
	readelf -dW "$bin" | grep -Eq 'BIND_NOW|FLAGS_1.*NOW' || lack="$lack BIND_NOW"
	syms=$(readelf --dyn-syms -W "$bin")
	echo "$syms" | grep -q '__stack_chk_fail' || lack="$lack stack-protector"
	echo "$syms" | grep -Eq '__[a-z_]+_chk@' || lack="$lack FORTIFY_SOURCE"
	if [ -n "$lack" ]; then
		echo "$name: not hardened:$lack"
		status=1
	else
		echo "$name: PIE, full RELRO, stack protector, fortified calls"
	fi
done
exit $status
