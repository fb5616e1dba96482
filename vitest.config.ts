import { defineConfig } from 'vitest/config';

/**
 * Two projects: `unit` (beside the code, no I/O) and `integration` (test/: real Redis and real
 * processes). `vitest run --project unit` runs the fast ones alone.
 */
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['packages/**/src/**/*.test.ts', 'apps/**/src/**/*.test.ts', 'bench/**/*.test.ts'],
          exclude: ['**/node_modules/**', '**/dist/**'],
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          globalSetup: ['test/global-setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          // These tests spawn Redis and app processes on a 2-core machine: one file at a time,
          // and only after the unit project has finished (a higher groupOrder runs later).
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
