import preact from "@preact/preset-vite";
import { defineConfig } from "vite";

// The built files are served by the insights-query package (entrypoints/dashboard.py).
export default defineConfig({
  plugins: [preact()],
  build: {
    outDir: "../src/insights_query/dashboard_assets",
    emptyOutDir: true,
    assetsDir: "assets",
  },
  server: {
    // `npm run dev` talks to a running `insights dev` on port 8000.
    proxy: { "/api": "http://127.0.0.1:8000" },
  },
});
