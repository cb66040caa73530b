// __NAME__: a unifaas function in AssemblyScript (WAGI: the request's method and path in
// the environment, its body on stdin; CGI headers, a blank line, then the body on
// stdout). It answers JSON saying what it received and how often it was called, a count
// kept in its key-value store through the hostcalls of unifaas.ts.
import { incr, lastStatus, STATUS_OK } from "./unifaas";

function jsonString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c == 0x22 || c == 0x5c) {
      out += "\\" + String.fromCharCode(c);
    } else if (c < 0x20) {
      out += "\\u" + c.toString(16).padStart(4, "0");
    } else {
      out += String.fromCharCode(c);
    }
  }
  return out + '"';
}

function envOr(name: string, otherwise: string): string {
  return process.env.has(name) && process.env.get(name).length > 0
    ? process.env.get(name)
    : otherwise;
}

const buffer = new ArrayBuffer(4096);
let received = 0;
for (;;) {
  const n = process.stdin.read(buffer);
  if (n <= 0) break;
  received += n;
}
const calls = incr("calls", 1); // null: no store outside the platform, or a quota
process.stdout.write("Content-Type: application/json\n\n");
process.stdout.write(
  '{"function": "__NAME__", "language": "assemblyscript", "method": ' +
    jsonString(envOr("REQUEST_METHOD", "")) +
    ', "path": ' +
    jsonString(envOr("PATH_INFO", "/")) +
    ', "received_bytes": ' +
    received.toString() +
    ', "calls": ' +
    (lastStatus == STATUS_OK ? calls.toString() : "null") +
    "}\n",
);
