// @ts-check
// Lint for the whole monorepo: type-aware typescript-eslint on every .ts file, plain rules (no
// type information) on .js/.mjs scripts and fixtures, and eslint-config-prettier last so that
// formatting is Prettier's job alone.
import js from '@eslint/js';
import { defineConfig, globalIgnores } from 'eslint/config';
import prettier from 'eslint-config-prettier/flat';
import globals from 'globals';
import tseslint from 'typescript-eslint';

/**
 * TypeScript files that no package's tsconfig builds (`tsc -b` leaves tests out of dist).
 * tsconfig.test.json is their program; the project service would not find them.
 */
const outsideBuildTs = [
  'packages/*/src/**/*.test.ts',
  'apps/*/src/**/*.test.ts',
  'test/**/*.ts',
  'bench/**/*.ts',
  'vitest.config.ts',
];

export default defineConfig(
  globalIgnores(['**/dist/', '**/node_modules/', '**/coverage/', '**/*.lua', 'bench/results/', '.tmp/']),

  js.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      globals: globals.node,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      // `_`-prefixed names are deliberately unused (positional callback arguments, rest omits).
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_' },
      ],
    },
  },
  {
    files: outsideBuildTs,
    languageOptions: {
      parserOptions: { projectService: false, project: './tsconfig.test.json', tsconfigRootDir: import.meta.dirname },
    },
  },
  {
    // Plain Node scripts (bootstrap, demo, fixtures' transform modules): no tsconfig covers them.
    files: ['**/*.js', '**/*.mjs', '**/*.cjs'],
    extends: [tseslint.configs.disableTypeChecked],
  },

  prettier,
);
