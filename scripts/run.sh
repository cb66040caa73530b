#!/usr/bin/env bash
# `make run`: start the platform in the foreground, deploy the examples, print a curl line each.
set -euo pipefail
cd "$(dirname "$0")/.."
UNIFAAS=.venv/bin/unifaas
PORT=${UNIFAAS_PORT:-8080}
export UNIFAAS_URL=${UNIFAAS_URL:-http://127.0.0.1:$PORT}

"$UNIFAAS" up --port "$PORT" &
up_pid=$!
stop() { kill -TERM "$up_pid" 2>/dev/null || true; wait "$up_pid" 2>/dev/null || true; }
trap stop EXIT
trap 'exit 130' INT TERM

for _ in $(seq 1 600); do
  curl -fsS "$UNIFAAS_URL/healthz" >/dev/null 2>&1 && break
  kill -0 "$up_pid" 2>/dev/null || { echo "run: unifaas up exited" >&2; exit 1; }
  sleep 0.2
done

deploy() { "$UNIFAAS" deploy "$@" >/dev/null; }
deploy hello functions/build/hello.wasm
deploy echo functions/build/echo.wasm
deploy cgi functions/build/cgi.wasm --abi wagi
deploy files functions/build/files.wasm --files functions/files/bundle

cat <<MSG

unifaas is up at $UNIFAAS_URL with the examples deployed. Try:
  curl $UNIFAAS_URL/fn/hello
  curl --data-binary 'echo me' $UNIFAAS_URL/fn/echo
  curl -i '$UNIFAAS_URL/fn/cgi/some/path?name=ada' -H 'X-Demo: 1'
  curl $UNIFAAS_URL/fn/files
  $UNIFAAS deploy myfn path/to/module.wasm && $UNIFAAS invoke myfn --data hi
Press Ctrl-C to stop (every microVM is stopped with it).
MSG
wait "$up_pid"
