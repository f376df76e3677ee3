#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for the test suite (tests/src/postgres.rs starts it):
#   cluster.sh DIR PORT PASSWORD OWNER_PID
# initdb in DIR (SCRAM passwords, user `sts`), then `postgres` on 127.0.0.1:PORT only (no Unix socket in
# a shared place). Runs as `nobody` when started as root (PostgreSQL refuses root). Prints READY once the
# server accepts connections; stops the server and removes DIR when OWNER_PID (the test process) is gone
# or on SIGTERM. Fails loudly when the server binaries are missing (scripts/install-deps --peers).
set -euo pipefail
dir=$1 port=$2 password=$3 owner=$4

bin=""
for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
  [ -x "$d/initdb" ] && [ -x "$d/postgres" ] && { bin=$d; break; }
done
if [ -z "$bin" ] && command -v initdb >/dev/null && command -v postgres >/dev/null; then
  bin=$(dirname "$(command -v initdb)")
fi
[ -n "$bin" ] || { echo "cluster.sh: no PostgreSQL server binaries (install the Debian package postgresql: scripts/install-deps --peers)" >&2; exit 1; }

as_user=()
if [ "$(id -u)" -eq 0 ]; then
  chown nobody:nogroup "$dir"
  as_user=(setpriv --reuid=nobody --regid=nogroup --clear-groups --)
fi

printf '%s\n' "$password" > "$dir/pw"
chmod 600 "$dir/pw"
[ "$(id -u)" -eq 0 ] && chown nobody:nogroup "$dir/pw"
"${as_user[@]}" "$bin/initdb" -D "$dir/data" -U sts --pwfile="$dir/pw" --auth=scram-sha-256 \
  --encoding=UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1 \
  || { cat "$dir/initdb.log" >&2; exit 1; }
rm -f "$dir/pw"

# fsync off: the tests kill the STS, never PostgreSQL, and nothing here must survive a power cut.
"${as_user[@]}" "$bin/postgres" -D "$dir/data" -h 127.0.0.1 -p "$port" -k "$dir/data" \
  -c fsync=off -c full_page_writes=off -c max_connections=300 -c log_min_messages=warning \
  >"$dir/postgres.log" 2>&1 &
pg=$!

stop() {
  kill -INT "$pg" 2>/dev/null || true
  wait "$pg" 2>/dev/null || true
  rm -rf "$dir"
  exit 0
}
trap stop TERM INT

for _ in $(seq 1 300); do
  if "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U sts; then
    echo "BIN=$bin"
    echo READY
    break
  fi
  kill -0 "$pg" 2>/dev/null || { cat "$dir/postgres.log" >&2; exit 1; }
  sleep 0.1
done

while kill -0 "$owner" 2>/dev/null && kill -0 "$pg" 2>/dev/null; do
  sleep 0.5
done
stop
