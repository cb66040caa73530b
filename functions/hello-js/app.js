// A JavaScript HTTP function for unifaas: a wasi:http/proxy component built by
// componentize-js (StarlingMonkey). It answers with the standard fetch-event API:
// GET / says hello in JSON; POST /echo answers the JSON it was sent, with its keys;
// anything else is a JSON 404. console.log goes to the call's log (`unifaas logs`).

addEventListener("fetch", (event) => event.respondWith(handle(event.request)));

function json(status, document) {
  return new Response(JSON.stringify(document), {
    status,
    headers: { "content-type": "application/json" },
  });
}

async function handle(request) {
  const { pathname } = new URL(request.url);
  console.log(`${request.method} ${pathname}`);
  if (request.method === "GET" && pathname === "/") {
    return json(200, { hello: "from JavaScript in a microVM" });
  }
  if (request.method === "POST" && pathname === "/echo") {
    let sent;
    try {
      sent = JSON.parse((await request.text()) || "null");
    } catch (err) {
      return json(400, { error: `not JSON: ${err.message}` });
    }
    const keys = sent && typeof sent === "object" ? Object.keys(sent).length : 0;
    return json(200, { echo: sent, keys });
  }
  return json(404, { error: `no route for ${pathname}` });
}
