#!/usr/bin/env node
/**
 * The production build: `npm run build` (also run by `npm install` through `prepare`).
 * First the workspace packages (packages/protocol, then packages/guard and packages/agent, which
 * import it): each compiles its src/ to ESM JavaScript and `.d.ts` files in its own dist/, which its
 * package.json `exports` name. Then the broker, whose imports of `@errand/*` resolve to those
 * builds: its TypeScript goes to ESM JavaScript in dist/ (tsconfig.build.json: no tests), and the
 * files the code reads from disk are copied beside the compiled modules: db/migrations and
 * db/migrations-pg (SQL and the journals, read by db/open.ts relative to its own location).
 *
 * Usage: node scripts/build.mjs [--out DIR] [--packages-only]
 *   --out DIR          the broker's output (default dist/; only a new or empty folder)
 *   --packages-only    build the packages and stop (what the packaging test packs)
 * Exit 1 when the compiler reports an error.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outFlag = process.argv.indexOf('--out');
const DEFAULT_OUT = join(ROOT, 'dist');
const OUT = outFlag > 0 && process.argv[outFlag + 1] ? resolve(process.argv[outFlag + 1]) : DEFAULT_OUT;
/** Files read at run time, relative to the root; copied to the same place under dist/. */
const ASSETS = ['db/migrations', 'db/migrations-pg'];

const PACKAGES_ONLY = process.argv.includes('--packages-only');

if (PACKAGES_ONLY) {
  // The broker's output is left as it is.
} else if (OUT === DEFAULT_OUT) {
  rmSync(OUT, { recursive: true, force: true });
} else if (existsSync(OUT) && readdirSync(OUT).length > 0) {
  // Only dist/ is ever emptied: another folder is written to only when it is new or empty.
  process.stderr.write(`build: ${OUT} is not empty; pass a new or empty folder to --out\n`);
  process.exit(2);
}
/** Workspace packages in build order: a package comes after the packages it imports. */
const PACKAGES = ['protocol', 'guard', 'agent'];

const tsPackage = createRequire(import.meta.url).resolve('typescript/package.json');
const tsc = join(dirname(tsPackage), 'bin', 'tsc');
const compile = (project, extra = []) => {
  const result = spawnSync(process.execPath, [tsc, '-p', project, ...extra], { stdio: 'inherit' });
  if (result.status !== 0) {
    process.stderr.write(`build: the TypeScript compiler failed on ${relative(ROOT, project)} (see above)\n`);
    process.exit(1);
  }
};
for (const name of PACKAGES) {
  const dir = join(ROOT, 'packages', name);
  // Compiled beside, then swapped in: a test building at the same time (the packaging test, the
  // production start test) never finds a package without its dist/ for longer than the swap.
  const fresh = join(dir, `.dist-${process.pid}`);
  rmSync(fresh, { recursive: true, force: true });
  compile(join(dir, 'tsconfig.build.json'), ['--outDir', fresh]);
  rmSync(join(dir, 'dist'), { recursive: true, force: true });
  renameSync(fresh, join(dir, 'dist'));
}
if (PACKAGES_ONLY) {
  process.stdout.write(`build: ${PACKAGES.map((name) => `packages/${name}/dist`).join(', ')} written\n`);
  process.exit(0);
}
compile(join(ROOT, 'tsconfig.build.json'), ['--outDir', OUT]);
for (const asset of ASSETS) cpSync(join(ROOT, asset), join(OUT, asset), { recursive: true });
process.stdout.write(`build: ${OUT} written (start with: node ${join(OUT, 'broker', 'main.js')})\n`);
