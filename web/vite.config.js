// Builds the app into the Python package (saas/webapp/static), which the API serves at /app.
// Stable file names (no content hashes) keep the committed build's diffs readable; the
// source hash in source-hash.txt (hash.mjs) says which sources it was built from.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/app/",
  build: {
    outDir: "../saas/webapp/static",
    emptyOutDir: true,
    target: "es2020",
    rollupOptions: {
      output: {
        entryFileNames: "assets/app.js",
        chunkFileNames: "assets/[name].js",
        assetFileNames: "assets/[name][extname]",
      },
    },
  },
  server: { proxy: { "/graphql": { target: "http://127.0.0.1:8000", ws: true } } },
});
