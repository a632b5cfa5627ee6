import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';

/**
 * `npm ci` (CI, the Dockerfile) installs exactly package-lock.json and refuses a lock out of step
 * with package.json. A lock written on one machine by some npm versions lacks the optional
 * per-platform packages of other systems (Biome's, esbuild's, libSQL's native builds); `npm ci`
 * on another platform then fails or installs no native build. This checks the committed lock.
 */

const ROOT = join(import.meta.dirname, '..', '..');
interface Entry {
  version?: string;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}
const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
  lockfileVersion: number;
  packages: Record<string, Entry>;
};
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Entry;

/** Where node would find `name` from the package installed at `from` (walking up node_modules). */
function resolveIn(from: string, name: string): string | undefined {
  let base = from;
  for (;;) {
    const candidate = `${base ? `${base}/` : ''}node_modules/${name}`;
    if (lock.packages[candidate]) return candidate;
    if (!base) return undefined;
    const up = base.lastIndexOf('/node_modules/');
    base = up < 0 ? '' : base.slice(0, up);
  }
}

describe('package-lock.json', () => {
  test("the lock's root lists the same dependencies as package.json", () => {
    const root = lock.packages[''];
    expect(lock.lockfileVersion).toBe(3);
    expect(root?.dependencies).toEqual(pkg.dependencies);
    expect(root?.devDependencies).toEqual(pkg.devDependencies);
  });

  test("every optional dependency is in the lock, for every platform (Biome's, esbuild's, libSQL's)", () => {
    const missing: string[] = [];
    for (const [path, entry] of Object.entries(lock.packages)) {
      for (const name of Object.keys(entry.optionalDependencies ?? {})) {
        if (!resolveIn(path, name)) missing.push(`${path || '(root)'} → ${name}`);
      }
    }
    expect(missing).toEqual([]);
    for (const name of ['@biomejs/cli-darwin-arm64', '@biomejs/cli-linux-arm64', '@libsql/linux-arm64-gnu']) {
      expect(lock.packages[`node_modules/${name}`], name).toBeDefined();
    }
  });
});
