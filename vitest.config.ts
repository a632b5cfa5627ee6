import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: [
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
