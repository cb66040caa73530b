// node build.mjs WIT_DIR OUT.wasm: app.js built into a wasi:http/proxy component.
import { componentize } from "@bytecodealliance/componentize-js";
import { writeFile } from "node:fs/promises";

const [witPath, out] = process.argv.slice(2);
const { component } = await componentize({
  sourcePath: new URL("app.js", import.meta.url).pathname,
  witPath,
  worldName: "proxy",
});
await writeFile(out, component);
