// node build.mjs OUT.wasm: app.js built into a wasi:http/proxy component by
// componentize-js, which `unifaas toolchain install js` installs (unifaas build says where).
import { writeFile } from "node:fs/promises";

const { componentize } = await import(process.env.UNIFAAS_COMPONENTIZE_JS);
const { component } = await componentize({
  sourcePath: new URL("app.js", import.meta.url).pathname,
  witPath: process.env.UNIFAAS_WIT,
  worldName: "proxy",
});
await writeFile(process.argv[2], component);
