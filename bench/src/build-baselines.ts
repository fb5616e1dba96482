/**
 * Transpiles bench/baselines/*.ts to bench/dist/baselines/*.js once per invocation, so the
 * baselines' processes run as plain JavaScript, like reseq's built apps: no TypeScript compiler
 * in their memory or their start-up CPU. Imports resolve from bench/ as before (bench/dist is
 * inside it), and bench/dist is ignored by git, ESLint and Prettier like every dist/.
 */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ROOT } from './processes.js';

const SOURCE = join(ROOT, 'bench', 'baselines');
export const BASELINES_OUT = join(ROOT, 'bench', 'dist', 'baselines');

/** Writes the JavaScript of every baseline module; returns the output directory. */
export async function buildBaselines(): Promise<string> {
  const ts = (await import('typescript')).default;
  await mkdir(BASELINES_OUT, { recursive: true });
  const files = (await readdir(SOURCE)).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'));
  for (const file of files) {
    const fileName = join(SOURCE, file);
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
    await writeFile(join(BASELINES_OUT, file.replace(/\.ts$/, '.js')), outputText);
  }
  return BASELINES_OUT;
}
