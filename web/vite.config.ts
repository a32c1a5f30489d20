import { defineConfig } from 'vitest/config';

// `npm run dev` proxies the API to a running `modelseal up` (MODELSEAL_URL,
// default http://127.0.0.1:8080). The build is plain static files with
// relative asset paths, served by the modelseal server itself.
const target = process.env.MODELSEAL_URL ?? 'http://127.0.0.1:8080';

export default defineConfig({
  base: './',
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: false, chunkSizeWarningLimit: 800 },
  server: {
    proxy: {
      '/ms': { target, changeOrigin: false },
      '/api': { target, changeOrigin: false },
      '/v1': { target, changeOrigin: false },
    },
  },
  test: { include: ['test/**/*.test.ts'], environment: 'node' },
});
