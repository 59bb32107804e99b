#!/bin/sh
# make-dev-pki.sh DIR - make a development PKI for failback in DIR.
#
# One CA per role (docs/SECURITY.md): agents (signs both agents' certificates,
# used as servers and as clients of each other), operators, monitors. Each
# listener trusts only the CA of the role it serves. Also made, for tests:
# a rogue CA and an operator certificate from it, an expired operator
# certificate, a replica-agent certificate for the wrong DNS name, primary
# certificates without a subjectAltName, for a wildcard and with another
# key, and a revoked operator and a revoked replica-agent certificate, each
# with its CA's CRL.
#
# Keys are EC P-256, mode 0600. Nothing here is for production: a real
# deployment keeps its CA keys offline. Re-running with an existing DIR does
# nothing unless --force is given.
set -eu

force=0
if [ "${1:-}" = "--force" ]; then force=1; shift; fi
if [ $# -ne 1 ]; then
	echo "usage: $0 [--force] DIR" >&2
	exit 2
fi
dir=$1
if [ -f "$dir/agents-ca.pem" ] && [ $force -eq 0 ]; then
	echo "make-dev-pki: $dir already holds a PKI (use --force to replace it)"
	exit 0
fi
command -v openssl >/dev/null || { echo "make-dev-pki: openssl is needed" >&2; exit 1; }
umask 077
mkdir -p "$dir"
cd "$dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

ca() { # name subject
	key "$1-ca.key"
	openssl req -new -x509 -key "$1-ca.key" -out "$1-ca.pem" -days 3650 -sha256 \
		-subj "/O=failback dev/CN=$2" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

# leaf NAME CA CN EKU [DNS]  (validity from $start to $end, YYYYMMDDHHMMSSZ)
leaf() {
	name=$1 ca=$2 cn=$3 eku=$4 dns=${5:-}
	key "$name.key"
	openssl req -new -key "$name.key" -out "$work/$name.csr" -subj "/O=failback dev/CN=$cn" 2>/dev/null
	{
		echo "basicConstraints=critical,CA:FALSE"
		echo "keyUsage=critical,digitalSignature"
		echo "extendedKeyUsage=$eku"
		[ -n "$dns" ] && echo "subjectAltName=DNS:$dns"
	} >"$work/$name.ext"
	: >"$work/index.txt"
	cat >"$work/ca.cnf" <<CNF
[ca]
default_ca = dev
[dev]
database = $work/index.txt
new_certs_dir = $work
serial = $work/serial
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
[any]
commonName = supplied
organizationName = optional
CNF
	openssl rand -hex 16 >"$work/serial"
	openssl ca -batch -notext -config "$work/ca.cnf" -cert "$ca-ca.pem" -keyfile "$ca-ca.key" \
		-in "$work/$name.csr" -out "$name.pem" -extfile "$work/$name.ext" \
		-startdate "$start" -enddate "$end" >/dev/null 2>&1
	chmod 644 "$name.pem"
}

ca agents "failback agents CA"
ca operators "failback operators CA"
ca monitors "failback monitors CA"
ca rogue "rogue CA"
chmod 644 ./*-ca.pem

start=$(date -u -d '1 day ago' +%Y%m%d%H%M%SZ)
end=$(date -u -d '825 days' +%Y%m%d%H%M%SZ)
leaf primary agents primary.failback.test serverAuth,clientAuth primary.failback.test
leaf replica agents replica.failback.test serverAuth,clientAuth replica.failback.test
leaf operator operators operator clientAuth
leaf monitor monitors monitor clientAuth
leaf rogue-operator rogue operator clientAuth
leaf wrongname-replica agents wrong.failback.test serverAuth,clientAuth wrong.failback.test
# Server-name and pin checks: a primary certificate without a subjectAltName
# (the name only in its CN), one for a wildcard name, and an impostor: the
# real primary's name from the agents CA, with another key.
leaf nosan-primary agents primary.failback.test serverAuth,clientAuth
leaf wildcard-primary agents primary.failback.test serverAuth,clientAuth '*.failback.test'
leaf impostor-primary agents primary.failback.test serverAuth,clientAuth primary.failback.test
# Revocation: an operator certificate the operators CA revoked, and that
# CA's CRL (operators-crl.pem) naming it.
leaf revoked-operator operators operator clientAuth
openssl ca -config "$work/ca.cnf" -cert operators-ca.pem -keyfile operators-ca.key \
	-revoke revoked-operator.pem >/dev/null 2>&1
openssl ca -config "$work/ca.cnf" -cert operators-ca.pem -keyfile operators-ca.key \
	-gencrl -crldays 3650 -out operators-crl.pem >/dev/null 2>&1
chmod 644 operators-crl.pem
# ... and a replica-agent certificate the agents CA revoked, with that CA's
# CRL (agents-crl.pem), for failbackctl --crl.
leaf revoked-replica agents replica.failback.test serverAuth,clientAuth replica.failback.test
openssl ca -config "$work/ca.cnf" -cert agents-ca.pem -keyfile agents-ca.key \
	-revoke revoked-replica.pem >/dev/null 2>&1
openssl ca -config "$work/ca.cnf" -cert agents-ca.pem -keyfile agents-ca.key \
	-gencrl -crldays 3650 -out agents-crl.pem >/dev/null 2>&1
chmod 644 agents-crl.pem
start=$(date -u -d '30 days ago' +%Y%m%d%H%M%SZ)
end=$(date -u -d '2 days ago' +%Y%m%d%H%M%SZ)
leaf expired-operator operators operator clientAuth

echo "make-dev-pki: development PKI written to $dir"
