#!/usr/bin/env bash
# Fuzzes a throwaway quickstart server from its own OpenAPI documents with schemathesis
# (PyPI), which must find no server error (5xx) on any generated input.
#
#   scripts/schemathesis.sh                 # builds kura-server (debug) unless KURA_SERVER is set
#   KURA_SERVER=target/debug/kura-server MAX_EXAMPLES=20 scripts/schemathesis.sh
#
# Idempotent: installs schemathesis with pip if `st` is missing. Starts `kura-server
# quickstart` on free loopback ports in a temporary directory, signs in as the demo
# admin and creates an API token, registers an agent with the demo registration token,
# and runs five passes, each checking `not_a_server_error`: the customer document's user
# and open routes with the API token; its agent routes with the agent credential; the
# routes that can shut the token out (the tenant's TOTP policy and admin allow-list,
# then token revocation); and last the management document with the operator token,
# which may suspend the demo tenant. MAX_EXAMPLES (default 100) bounds each operation:
# a run takes about a minute on two cores. SEED (default 1) fixes the inputs. When a
# pass fails, the server's log is kept in the temporary directory.
set -euo pipefail

max_examples=${MAX_EXAMPLES:-100}
root=$(cd "$(dirname "$0")/.." && pwd)

if ! command -v st >/dev/null 2>&1; then
    python3 -m pip install --quiet schemathesis
fi

server=${KURA_SERVER:-}
if [[ -z $server ]]; then
    (cd "$root" && cargo build --quiet --locked -p kura-server --bin kura-server)
    server="${CARGO_TARGET_DIR:-$root/target}/debug/kura-server"
fi

work=$(mktemp -d)
pid=
cleanup() {
    if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    if [[ ${keep:-0} == 0 ]]; then rm -rf "$work"; else echo "server log kept in $work/server.log" >&2; fi
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
customer_port=$(free_port)
management_port=$(free_port)
# Nothing listens there: reset mail waits in the outbox, as when a mail server is down.
smtp_port=$(free_port)

"$server" quickstart --data "$work/data" --json \
    --customer-listen "127.0.0.1:$customer_port" \
    --management-listen "127.0.0.1:$management_port" \
    --smtp-url "smtp://127.0.0.1:$smtp_port" \
    >"$work/quickstart.out" 2>"$work/server.log" &
pid=$!
for _ in $(seq 300); do
    [[ -s $work/quickstart.out ]] && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
    sleep 0.1
done
info=$(head -n1 "$work/quickstart.out")
field() { jq -r ".$1" <<<"$info"; }
customer=$(field customer_url)
management=$(field management_url)
ca=$(field ca_cert)

curl_json() {
    curl --silent --show-error --fail-with-body --cacert "$ca" -H 'Content-Type: application/json' "$@"
}

# The demo admin signs in and makes an API token; an agent registers.
login_body=$(jq -n --arg login "$(field admin_login)" --arg password "$(field admin_password)" \
    '{login: $login, password: $password}')
signed_in=$(curl_json -c "$work/cookies" -d "$login_body" "$customer/api/v1/login")
csrf=$(jq -r .csrf_token <<<"$signed_in")
api_token=$(curl_json -b "$work/cookies" -H "X-CSRF-Token: $csrf" \
    -d '{"name": "schemathesis", "expires_in_days": 1}' "$customer/api/v1/tokens" | jq -r .token)
register_body=$(jq -n --arg token "$(field registration_token)" '{token: $token, name: "schemathesis"}')
agent_credential=$(curl_json -d "$register_body" "$customer/api/v1/agents/register" | jq -r .credential)

agent_routes='^/api/v1/(vault|agent/|jobs/)'
# A TOTP policy or admin allow-list that shuts the token out, revoking the token (its id
# is in GET /api/v1/tokens) or suspending the tenant would turn every later user request
# into a 403 or 401, so these come after the other user routes.
policies='^/api/v1/tenant/(totp-policy|admin-networks)$'
revocation='^/api/v1/tokens/\{id\}$'
run() {
    local document=$1 bearer=$2
    shift 2
    # In the temporary directory, where schemathesis keeps its example database.
    (cd "$work" && st run "$document" --tls-verify "$ca" -H "Authorization: Bearer $bearer" \
        --checks not_a_server_error --max-examples "$max_examples" --workers 2 \
        --seed "${SEED:-1}" --no-color "$@")
}

status=0
run "$customer/api/v1/openapi.json" "$api_token" --exclude-path-regex "$agent_routes|$policies|$revocation" || status=1
run "$customer/api/v1/openapi.json" "$agent_credential" --include-path-regex "$agent_routes" || status=1
run "$customer/api/v1/openapi.json" "$api_token" --include-path-regex "$policies" || status=1
run "$customer/api/v1/openapi.json" "$api_token" --include-path-regex "$revocation" || status=1
run "$management/api/v1/operator/openapi.json" "$(field operator_token)" || status=1
keep=$status
exit "$status"
