#!/usr/bin/env bash
# Fuzz the STS admin JSON API with schemathesis (tests/peers/requirements.txt, installed into
# tests/peers/.venv by `scripts/install-deps --peers`).
#
#   tests/peers/run-schemathesis.sh BASE_URL TOKEN [EXTRA_ST_RUN_ARGS...]
#     BASE_URL  the running STS, e.g. http://127.0.0.1:8080 (no trailing /admin)
#     TOKEN     an admin API token (sent as Authorization: Bearer TOKEN)
#     any further arguments are appended to `st run` (e.g. --phases fuzzing, --include-operation-id ListKeys)
#
# Loads BASE_URL/admin/api/openapi.json and runs every phase (examples, coverage, fuzzing, stateful)
# with all of schemathesis' checks (not_a_server_error, status_code/content_type/response_headers/
# response_schema conformance, negative_data_rejection, positive_data_acceptance, ignored_auth, ...),
# continuing after a failure so that one run lists every distinct failure.
# Bounded and reproducible: at most $ST_MAX_EXAMPLES (25) test cases per operation and phase, a fixed
# seed, one worker, a 10 s request timeout and a hard wall-clock limit of $ST_TIMEOUT (240) seconds.
# Only BASE_URL is contacted (proxy variables are dropped); nothing is written into the repository: it
# runs in a temporary directory with its own schemathesis.toml (below) and no Hypothesis example database.
# Optional: ST_REPORT_DIR=DIR also writes junit.xml and events.ndjson (full requests/responses) there.
#
# Exit code: 0 = no failures and no errors; 1 = failures or errors (the summary says which); 124 = the
# time limit ran out; 2 = usage error, st missing, or the OpenAPI document could not be fetched or parsed
# (an operation whose schema is broken shows up as an error, exit 1). The schemathesis report (each distinct failure with a curl command that reproduces it, the
# warnings, then a SUMMARY whose last line reads "N failures, ..." or "N passed ...") goes to stdout.
# `st replay ID` does not work afterwards (the temporary directory is gone): use ST_REPORT_DIR.
set -euo pipefail

if [ "$#" -lt 2 ] || [ -z "$1" ] || [ -z "$2" ]; then
  echo "usage: $0 BASE_URL TOKEN [EXTRA_ST_RUN_ARGS...]" >&2
  exit 2
fi
base=${1%/}
token=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
st="$here/.venv/bin/st"
[ -x "$st" ] || { echo "run-schemathesis: $st is missing; run scripts/install-deps --peers" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/sts-schemathesis.XXXXXX")
trap 'rm -rf "$work"' EXIT
# Exemptions from positive_data_acceptance, for operations whose bodies are validated beyond what a JSON
# Schema can say: a keystore (random base64 is never a PKCS#12 file that opens with the password), provider
# settings (TOML text, validated like [[providers]]), and an export document (every entry validated like the
# configuration), and applications (their `providers` must name identity providers that exist, which no
# schema can say). Their 400 for schema-valid random data is expected; every other check still applies.
cat >"$work/schemathesis.toml" <<'TOML'
[[operations]]
include-operation-id = "ImportKey"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]

[[operations]]
include-operation-id = "CreateProvider"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]

[[operations]]
include-operation-id = "UpdateProvider"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]

[[operations]]
include-operation-id = "CreateApplication"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]

[[operations]]
include-operation-id = "UpdateApplication"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]

[[operations]]
include-operation-id = "Import"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]
TOML

report=()
if [ -n "${ST_REPORT_DIR:-}" ]; then
  mkdir -p "$ST_REPORT_DIR"
  report=(--report junit,ndjson --report-dir "$ST_REPORT_DIR"
    --report-junit-path "$ST_REPORT_DIR/junit.xml" --report-ndjson-path "$ST_REPORT_DIR/events.ndjson")
fi

cd "$work"
set +e
env -u http_proxy -u https_proxy -u HTTP_PROXY -u HTTPS_PROXY -u all_proxy -u ALL_PROXY \
  NO_COLOR=1 COLUMNS=120 HOME="$work" XDG_CACHE_HOME="$work" \
  timeout --kill-after=10 "${ST_TIMEOUT:-240}" \
  "$st" --config-file "$work/schemathesis.toml" --no-color run "$base/admin/api/openapi.json" \
  --url "$base" \
  --header "Authorization: Bearer $token" \
  --checks all \
  --continue-on-failure \
  --max-examples "${ST_MAX_EXAMPLES:-25}" \
  --seed "${ST_SEED:-20261122}" \
  --generation-database none \
  --workers 1 \
  --request-timeout 10 \
  --max-redirects 0 \
  --wait-for-schema 15 \
  "${report[@]}" "$@"
rc=$?
set -e
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
  echo "run-schemathesis: timed out after ${ST_TIMEOUT:-240} s" >&2
  exit 124
fi
exit "$rc"
