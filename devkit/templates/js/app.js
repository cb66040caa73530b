// __NAME__: a unifaas function in JavaScript, a wasi:http component built by
// componentize-js. It answers every request with JSON saying what it received, on the
// standard fetch-event API; console.log goes to the call's log (`unifaas logs`).

addEventListener("fetch", (event) => event.respondWith(handle(event.request)));

async function handle(request) {
  const { pathname } = new URL(request.url);
  const received = new Uint8Array(await request.arrayBuffer()).length;
  console.log(`${request.method} ${pathname} (${received} bytes)`);
  const answer = {
    function: "__NAME__",
    language: "js",
    method: request.method,
    path: pathname,
    received_bytes: received,
  };
  return new Response(JSON.stringify(answer), {
    headers: { "content-type": "application/json" },
  });
}
