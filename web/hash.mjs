// The hash of the app's sources, written next to the build; tests/webapp/test_build.py
// computes the same hash from web/ and fails when the committed build is older.
import { createHash } from "node:crypto";
import { readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join, relative, sep } from "node:path";

export const SOURCES = ["index.html", "package.json", "package-lock.json", "vite.config.js", "hash.mjs", "vendor.mjs", "src"];
const root = new URL(".", import.meta.url).pathname;

function files(path) {
  return statSync(path).isDirectory() ? readdirSync(path).flatMap((n) => files(join(path, n))) : [path];
}

const hash = createHash("sha256");
for (const path of SOURCES.flatMap((s) => files(join(root, s)))
  .map((p) => relative(root, p).split(sep).join("/")).sort()) {
  hash.update(path + "\0");
  hash.update(readFileSync(join(root, path)));
  hash.update("\0");
}
writeFileSync(join(root, "../saas/webapp/static/source-hash.txt"), hash.digest("hex") + "\n");
