#!/usr/bin/env node
/**
 * The production build: `npm run build` (also run by `npm install` through `prepare`).
 * Compiles the broker's TypeScript to ESM JavaScript in dist/ (tsconfig.build.json: no tests), then
 * copies the files the code reads from disk beside the compiled modules: db/migrations (SQL and the
 * drizzle journal, read by db/open.ts relative to its own location).
 *
 * Usage: node scripts/build.mjs [--out DIR]   (default dist/; exit 1 when the compiler reports an error)
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outFlag = process.argv.indexOf('--out');
const DEFAULT_OUT = join(ROOT, 'dist');
const OUT = outFlag > 0 && process.argv[outFlag + 1] ? resolve(process.argv[outFlag + 1]) : DEFAULT_OUT;
/** Files read at run time, relative to the root; copied to the same place under dist/. */
const ASSETS = ['db/migrations'];

if (OUT === DEFAULT_OUT) {
  rmSync(OUT, { recursive: true, force: true });
} else if (existsSync(OUT) && readdirSync(OUT).length > 0) {
  // Only dist/ is ever emptied: another folder is written to only when it is new or empty.
  process.stderr.write(`build: ${OUT} is not empty; pass a new or empty folder to --out\n`);
  process.exit(2);
}
const tsPackage = createRequire(import.meta.url).resolve('typescript/package.json');
const tsc = join(dirname(tsPackage), 'bin', 'tsc');
const result = spawnSync(process.execPath, [tsc, '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', OUT], {
  stdio: 'inherit',
});
if (result.status !== 0) {
  process.stderr.write('build: the TypeScript compiler failed (see above)\n');
  process.exit(1);
}
for (const asset of ASSETS) cpSync(join(ROOT, asset), join(OUT, asset), { recursive: true });
process.stdout.write(`build: ${OUT} written (start with: node ${join(OUT, 'broker', 'main.js')})\n`);
