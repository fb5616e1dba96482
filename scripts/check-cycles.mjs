#!/usr/bin/env node
// Circular-import check over the apps' and packages' sources (part of `pnpm lint`). Silent and
// exit 0 when there is no cycle; lists each cycle and exits 1 otherwise. Type-only imports are
// left out (they vanish at runtime), and so are dynamic import()s (they do not run at load).
//
// dpdm's CLI would pass silently if it could not resolve the NodeNext-style `./x.js` imports to
// `./x.ts`; it does resolve them through the root tsconfig.json's references, and this script
// also fails when a relative import resolves to nothing, so the check can never go blind.
import { parseCircular, parseDependencyTree, prettyCircular } from 'dpdm';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const entries = ['apps/*/src/**/*.ts', 'packages/*/src/**/*.ts'];

const tree = await parseDependencyTree(entries, {
  cwd: root,
  context: root,
  transform: true,
  // Cross-package imports land in another package's dist/: project references already forbid
  // cycles between packages, so stop there.
  exclude: /\/(node_modules|dist)\//,
});

const unresolved = [];
for (const [file, deps] of Object.entries(tree)) {
  for (const dep of deps ?? []) {
    if (dep.id === null && dep.request.startsWith('.')) unresolved.push(`${file}: cannot resolve "${dep.request}"`);
  }
}
if (unresolved.length > 0) {
  console.error(`check-cycles: ${unresolved.length} relative import(s) did not resolve:\n  ${unresolved.join('\n  ')}`);
  process.exit(1);
}

const cycles = parseCircular(tree, true);
if (cycles.length > 0) {
  console.error(`check-cycles: ${cycles.length} circular import(s):\n${prettyCircular(cycles, '  ')}`);
  process.exit(1);
}
