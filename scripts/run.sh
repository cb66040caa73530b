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
B=functions/build
deploy hello $B/hello.wasm
deploy echo $B/echo.wasm
deploy cgi $B/cgi.wasm --abi wagi
deploy files $B/files.wasm --files functions/files/bundle
deploy wagi-router $B/wagi-router.wasm --abi wagi
deploy json-transform $B/json-transform.wasm
deploy static-site $B/static-site.wasm --abi wagi --files functions/static-site/site
deploy sha256 $B/sha256.wasm
deploy misbehave $B/misbehave.wasm --arg exit --arg 7 --timeout 2
deploy counter $B/counter.wasm --abi wagi
deploy shorten $B/shorten.wasm --abi wagi
deploy fetch $B/fetch.wasm --abi wagi --allow-host "127.0.0.1:$PORT"
deploy http-echo $B/http-echo.wasm
deploy hello-py $B/hello-py.wasm --timeout 20
deploy fetch-py $B/fetch-py.wasm --timeout 20 --allow-host "127.0.0.1:$PORT"
deploy counter-spin $B/counter-spin.wasm --timeout 20 --env GREETING=hello
deploy hello-js $B/hello-js.wasm --timeout 20

U=$UNIFAAS_URL/fn
cat <<MSG

unifaas is up at $UNIFAAS_URL with the examples deployed. Try:
  curl $U/hello
  curl --data-binary 'echo me' $U/echo
  curl -i '$U/cgi/some/path?name=ada' -H 'X-Demo: 1'
  curl $U/files
  curl -i '$U/wagi-router/hello?name=Ada'; curl $U/wagi-router/whoami -H 'X-Request-Id: 42'
  curl --data-binary '{"numbers": [3, 1.5, -2, 10]}' $U/json-transform
  curl -i --data-binary 'a wasi:http component' '$U/http-echo/any/path?q=1'
  curl $U/hello-py; curl --json '{"a": 1}' $U/hello-py/echo     # Python, by componentize-py
  curl '$U/fetch-py?url=$UNIFAAS_URL/fn/hello'                    # Python, outbound HTTP
  curl $U/counter-spin/a; curl $U/counter-spin/a                 # a Spin app, unchanged
  curl $U/hello-js; curl --json '{"a": 1}' $U/hello-js/echo       # JavaScript, by componentize-js
  curl -i $U/static-site/
  curl --data-binary abc $U/sha256
  curl -i -X POST $U/misbehave
  curl $U/counter/any/path        (run it twice)
  curl --data-binary https://example.com/ $U/shorten; curl -i $U/shorten/1
  curl '$U/fetch?url=http://127.0.0.1:$PORT/fn/hello'; curl -i '$U/fetch?url=http://example.com/'
  $UNIFAAS deploy myfn path/to/module.wasm && $UNIFAAS invoke myfn --data hi
Live dashboard: $UNIFAAS_URL/dashboard   Prometheus metrics: $UNIFAAS_URL/metrics
Press Ctrl-C to stop (every microVM is stopped with it).
MSG
wait "$up_pid"
