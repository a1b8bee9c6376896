#!/usr/bin/env bash
# `make kind-e2e`: the deployed sample stack is Ready, snapshots flow through Redis, and the
# dashboard answers through a port-forward. NAME/NS select the CobStack (examples/cobstack.yaml).
set -euo pipefail
NAME="${NAME:-demo}"
NS="${NS:-default}"
TIMEOUT="${TIMEOUT:-600s}"
PORT="${PORT:-18080}"
k() { kubectl -n "$NS" "$@"; }
fail() { echo "kind-e2e: $*" >&2; k get cobstack "$NAME" -o wide >&2 || true; exit 1; }

echo "waiting up to $TIMEOUT for cobstack/$NAME to be Ready"
k wait "cobstack/$NAME" --for=condition=Ready --timeout="$TIMEOUT" \
  || { k describe cobstack "$NAME" >&2; fail "not Ready (conditions above say which component is not)"; }

# Stream names: components/cobstack/streams.py (cob:book:<SYMBOL>, written by ingest only).
symbol="$(k get cobstack "$NAME" -o jsonpath='{.spec.stack.symbols[0]}')"
last_id() { k exec "statefulset/$NAME-redis" -- redis-cli --raw XREVRANGE "cob:book:$symbol" + - COUNT 1 | head -n1; }
first="$(last_id)"
sleep 5
second="$(last_id)"
[[ -n "$second" && "$second" != "$first" ]] || fail "no new snapshot on cob:book:$symbol in 5 s ($first -> $second)"
echo "snapshots flow: cob:book:$symbol $first -> $second"

k port-forward "svc/$NAME-dashboard" "$PORT:80" >/dev/null 2>&1 &
forward=$!
trap 'kill $forward 2>/dev/null || true' EXIT
for _ in $(seq 1 30); do
  curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  sleep 1
done
curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null || fail "dashboard /healthz does not answer through the port-forward"
curl -fsS "http://127.0.0.1:$PORT/" | grep -qi "$symbol" || fail "dashboard page does not mention $symbol"
echo "dashboard answers on 127.0.0.1:$PORT (port-forward to svc/$NAME-dashboard)"
echo "kind-e2e: OK"
