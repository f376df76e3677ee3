#!/usr/bin/env bash
# A throw-away OpenLDAP directory for the test suite (tests/src/ldap.rs starts it):
#   directory.sh DIR LDAP_PORT LDAPS_PORT OWNER_PID
# Makes a test CA and a server certificate for 127.0.0.1/localhost (openssl), a slapd.conf with the mdb
# backend and the memberOf overlay, starts Debian's slapd on ldap://127.0.0.1:LDAP_PORT (plain and
# StartTLS) and ldaps://127.0.0.1:LDAPS_PORT, with the stats log (every BIND and SEARCH) in DIR/slapd.log,
# then seeds it with seed.ldif through ldapadd (so the overlay fills memberOf). Prints CA=<file> and
# READY; stops slapd and removes DIR when OWNER_PID (the test process) is gone or on SIGTERM. Fails loudly
# when slapd or ldap-utils are missing (scripts/install-deps --peers).
set -euo pipefail
dir=$1 ldap_port=$2 ldaps_port=$3 owner=$4
here=$(cd "$(dirname "$0")" && pwd)

for b in /usr/sbin/slapd ldapadd openssl; do
  command -v "$b" >/dev/null || { echo "directory.sh: $b missing (Debian slapd, ldap-utils, openssl: scripts/install-deps --peers)" >&2; exit 1; }
done

cd "$dir"
mkdir -p db
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=STS test LDAP CA" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
  -keyout ca.key -out ca.pem >/dev/null 2>&1
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr >/dev/null 2>&1
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' > ext.cnf
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf \
  -out server.pem >/dev/null 2>&1

cat > slapd.conf <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile $dir/slapd.pid
argsfile $dir/slapd.args
TLSCACertificateFile $dir/ca.pem
TLSCertificateFile $dir/server.pem
TLSCertificateKeyFile $dir/server.key
database mdb
suffix "dc=example,dc=org"
rootdn "cn=root,dc=example,dc=org"
rootpw root-pw
directory $dir/db
maxsize 16777216
overlay memberof
access to attrs=userPassword
  by self write
  by anonymous auth
  by * none
access to *
  by dn.exact="cn=sts-reader,ou=services,dc=example,dc=org" read
  by self read
  by users read
  by * none
CONF

/usr/sbin/slapd -f "$dir/slapd.conf" -h "ldap://127.0.0.1:$ldap_port/ ldaps://127.0.0.1:$ldaps_port/" \
  -d 256 2>"$dir/slapd.log" &
slapd=$!

stop() {
  kill -TERM "$slapd" 2>/dev/null || true
  wait "$slapd" 2>/dev/null || true
  cd /
  rm -rf "$dir"
  exit 0
}
trap stop TERM INT

for _ in $(seq 1 100); do
  if ldapsearch -x -H "ldap://127.0.0.1:$ldap_port" -b "" -s base >/dev/null 2>&1; then
    break
  fi
  kill -0 "$slapd" 2>/dev/null || { cat "$dir/slapd.log" >&2; exit 1; }
  sleep 0.1
done
ldapadd -x -H "ldap://127.0.0.1:$ldap_port" -D "cn=root,dc=example,dc=org" -w root-pw \
  -f "$here/seed.ldif" >"$dir/seed.log" 2>&1 || { cat "$dir/seed.log" >&2; exit 1; }
echo "CA=$dir/ca.pem"
echo "LOG=$dir/slapd.log"
echo READY

while kill -0 "$owner" 2>/dev/null && kill -0 "$slapd" 2>/dev/null; do
  sleep 0.5
done
stop
