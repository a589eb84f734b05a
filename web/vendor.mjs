// GraphiQL's files, served by the API at /app/graphiql/ instead of a CDN: the exact versions
// and paths Strawberry's GraphiQL page names (its unpkg.com URLs are rewritten to
// /app/graphiql/, saas/app.py), so the page's integrity hashes still check them.
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";

const FILES = [
  ["react@18.2.0", "react", "umd/react.production.min.js"],
  ["react-dom@18.2.0", "react-dom", "umd/react-dom.production.min.js"],
  ["js-cookie@3.0.5", "js-cookie", "dist/js.cookie.min.js"],
  ["graphiql@3.8.3", "graphiql", "graphiql.min.css"],
  ["graphiql@3.8.3", "graphiql", "graphiql.min.js"],
  ["@graphiql/plugin-explorer@1.0.2", "@graphiql/plugin-explorer", "dist/style.css"],
  ["@graphiql/plugin-explorer@1.0.2", "@graphiql/plugin-explorer", "dist/index.umd.js"],
];
const root = new URL(".", import.meta.url).pathname;
for (const [versioned, pkg, path] of FILES) {
  const target = join(root, "../saas/webapp/static/graphiql", versioned, path);
  mkdirSync(dirname(target), { recursive: true });
  copyFileSync(join(root, "node_modules", pkg, path), target);
}
