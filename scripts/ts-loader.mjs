// Runs the repository's own TypeScript (test/ and bench/ scripts such as the chaos command) on
// Node 20 without a build step or another dependency: `node --import ./scripts/ts-loader.mjs
// file.ts`. Each .ts file is transpiled on load with the TypeScript compiler the workspace already
// has (types are not checked here: `pnpm typecheck` does that), and a relative `./x.js` import
// from a .ts file finds `./x.ts`, as NodeNext resolution does at type-check time.
import { readFile } from 'node:fs/promises';
import { register } from 'node:module';
import { fileURLToPath } from 'node:url';
import { isMainThread } from 'node:worker_threads';

// `--import` runs this file on the main thread, which registers it as the hooks module; Node then
// loads it again on its hooks thread, where only the exported hooks below matter.
if (isMainThread) register(import.meta.url);

let ts;

export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context);
  } catch (err) {
    const fromTs = context.parentURL?.endsWith('.ts') && !context.parentURL.includes('/node_modules/');
    if (fromTs && err?.code === 'ERR_MODULE_NOT_FOUND' && /^\.{1,2}\//.test(specifier) && specifier.endsWith('.js')) {
      return nextResolve(`${specifier.slice(0, -3)}.ts`, context);
    }
    throw err;
  }
}

export async function load(url, context, nextLoad) {
  if (!url.startsWith('file:') || !url.endsWith('.ts') || url.includes('/node_modules/')) {
    return nextLoad(url, context);
  }
  ts ??= (await import('typescript')).default;
  const fileName = fileURLToPath(url);
  const { outputText } = ts.transpileModule(await readFile(fileName, 'utf8'), {
    fileName,
    compilerOptions: {
      module: ts.ModuleKind.ESNext,
      target: ts.ScriptTarget.ES2023,
      verbatimModuleSyntax: true,
      inlineSourceMap: true,
      inlineSources: true,
    },
  });
  return { format: 'module', source: outputText, shortCircuit: true };
}
