import { defineConfig } from 'vitest/config';

/**
 * `@errand/source`: the export condition under which the workspace packages (packages/*) resolve to
 * their TypeScript sources instead of their built dist/, so tests run what is in the tree without a
 * build (tsconfig.json `customConditions` and `tsx --conditions` do the same for tsc and tsx).
 */
const SOURCE_CONDITION = '@errand/source';

export default defineConfig({
  resolve: { conditions: [SOURCE_CONDITION, 'import', 'module', 'node', 'default'] },
  ssr: { resolve: { conditions: [SOURCE_CONDITION, 'import', 'node', 'default'] } },
  test: {
    include: [
      'packages/**/*.test.ts',
      'broker/**/*.test.ts',
      'db/**/*.test.ts',
      'admin-ui/**/*.test.ts',
      'mcp-server/**/*.test.ts',
      'a2a/**/*.test.ts',
      'e2e/**/*.spec.ts',
    ],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
  },
});
