import { defineConfig } from 'vitest/config';

/**
 * `@errand/source`: the export condition under which the workspace packages (packages/*) resolve to
 * their TypeScript sources instead of their built dist/, so tests run what is in the tree without a
 * build (tsconfig.json `customConditions` and `tsx --conditions` do the same for tsc and tsx).
 */
const SOURCE_CONDITION = '@errand/source';

export default defineConfig({
  // Vite's own defaults after it; `import`/`require` are added by the kind of import (listing
  // `import` here would hand ESM files to CommonJS `require` calls). Server-side (tests run there)
  // leaves out `module`: such a build is meant for bundlers and may not load in Node unbundled
  // (@opentelemetry/api's `module` build imports files without extensions).
  resolve: { conditions: [SOURCE_CONDITION, 'module', 'browser', 'development|production'] },
  ssr: { resolve: { conditions: [SOURCE_CONDITION, 'node', 'development|production'] } },
  test: {
    include: [
      'packages/**/*.test.ts',
      'broker/**/*.test.ts',
      'db/**/*.test.ts',
      'admin-ui/**/*.test.ts',
      'mcp-server/**/*.test.ts',
      'a2a/**/*.test.ts',
      'e2e/**/*.spec.ts',
      'e2e/postgres/*.test.ts',
      'e2e/bench/*.test.ts',
    ],
    // Starts PostgreSQL when ERRAND_TEST_DB=postgres (`npm run test:postgres`); nothing otherwise.
    globalSetup: ['e2e/postgres/global-setup.ts'],
    testTimeout: 30_000,
    // Set-up hooks start brokers, Chromium or a PostgreSQL server: on a loaded 2-core machine that
    // has taken over 30 s (a hook that hangs still fails, later).
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
