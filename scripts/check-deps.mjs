#!/usr/bin/env node
import { readdirSync, readFileSync, statSync } from 'node:fs';
/**
 * The dependency rule, checked on every `npm run lint`: which part of Errand may import which, and
 * no import cycles. It reads the import specifiers of every source file (type-only imports count:
 * they are still knowledge one part has of another) and fails with one line per violation.
 *
 *   packages      packages/<name>/src: the npm packages (@errand/protocol, @errand/guard, @errand/agent),
 *                 run in other people's processes. A package imports nothing of the broker: its own
 *                 files by relative path, another package only by name (guard and agent: protocol
 *                 only; protocol: nothing), and bare modules only when its package.json declares them
 *                 (dependencies or peerDependencies) or they are Node built-ins
 *   core          broker/core                   imports nothing of the project but itself and @errand/protocol
 *   engine        services, grants, identity, tokens, telemetry, engine.ts, config.ts, log.ts, db/
 *   HTTP kit      broker/http/*.ts, broker/http/middleware   shared by the doors; engine and core
 *   doors         broker/http/routes (OAuth and admin APIs), admin-ui (web), mcp-server/errand (MCP),
 *                 a2a (A2A): engine, kit and core, never another door
 *   composition   broker/app.ts, broker/broker.ts, broker/main.ts, broker/cli (the admin CLI): everything;
 *                 imported by nobody
 *
 * Everything else reaches a package by its name (`@errand/guard`), never by a path into packages/.
 * Tests, browser specs, the bench and the example server's demo script may import anything; the
 * example tool server itself is a guard user and may import only packages and core, and a package's
 * example (packages/<name>/example.ts) only packages.
 *
 * Usage: node scripts/check-deps.mjs   (exit 1 on a violation)
 */
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), '..');
const SOURCE_DIRS = ['packages', 'broker', 'db', 'admin-ui', 'mcp-server', 'a2a', 'e2e'];
/** The export condition naming a package entry point's TypeScript source (see vitest.config.ts). */
const SOURCE_CONDITION = '@errand/source';

/** The workspace packages: folder name → package.json (name, exports, dependencies). */
const PACKAGES = new Map(
  readdirSync(join(ROOT, 'packages'))
    .filter((dir) => exists(`packages/${dir}/package.json`))
    .map((dir) => [dir, JSON.parse(readFileSync(join(ROOT, 'packages', dir, 'package.json'), 'utf8'))]),
);

/** The source file a package specifier (`@errand/guard`, `@errand/guard/node`) names, or null. */
function packageSource(spec) {
  for (const [dir, pkg] of PACKAGES) {
    if (spec !== pkg.name && !spec.startsWith(`${pkg.name}/`)) continue;
    const entry = pkg.exports?.[`.${spec.slice(pkg.name.length)}`];
    const source = typeof entry === 'object' ? entry[SOURCE_CONDITION] : undefined;
    return source ? `packages/${dir}/${source.replace(/^\.\//, '')}` : `packages/${dir}/<no ${spec} export>`;
  }
  return null;
}

/** The package folder a file is in (`guard` for packages/guard/src/guard.ts), or null. */
const packageOf = (f) => (f.startsWith('packages/') ? f.split('/')[1] : null);

/** The bare module name of a specifier (`jose`, `@scope/name`), or null for a relative one. */
function bareName(spec) {
  if (spec.startsWith('.') || spec.startsWith('node:')) return null;
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

/** Every .ts/.tsx file under the source folders, as a path relative to the root with `/`. */
function sourceFiles() {
  const out = [];
  const walk = (dir) => {
    for (const name of readdirSync(join(ROOT, dir))) {
      if (name === 'node_modules' || name.startsWith('.')) continue;
      const path = `${dir}/${name}`;
      if (statSync(join(ROOT, path)).isDirectory()) walk(path);
      else if (/\.tsx?$/.test(name) && !name.endsWith('.d.ts')) out.push(path);
    }
  };
  for (const dir of SOURCE_DIRS) walk(dir);
  return out.sort();
}

/** The text without comments (strings and template literals are kept as they are). */
function withoutComments(text) {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    const next = text[i + 1];
    if (c === '/' && next === '/') {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (c === '/' && next === '*') {
      i = text.indexOf('*/', i + 2);
      i = i < 0 ? text.length : i + 2;
    } else if (c === "'" || c === '"' || c === '`') {
      const start = i++;
      while (i < text.length && text[i] !== c) i += text[i] === '\\' ? 2 : 1;
      out += text.slice(start, ++i);
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

const SPECIFIERS = [
  /\b(?:import|export)\s+(?:type\s+)?(?:[\w*{}\s,$]+?\s+from\s+)?['"]([^'"]+)['"]/g,
  /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
];

/** Every import specifier of a file. */
function specifiersOf(file) {
  const text = withoutComments(readFileSync(join(ROOT, file), 'utf8'));
  return SPECIFIERS.flatMap((re) => [...text.matchAll(re)].map((m) => m[1]));
}

/**
 * The project files a file imports (relative specifiers resolved; `.js` names the `.ts` source;
 * `@errand/*` names the source its package exports), each with how it was named.
 */
function importsOf(file) {
  const found = new Map();
  for (const spec of specifiersOf(file)) {
    const fromPackage = packageSource(spec);
    if (fromPackage) {
      found.set(fromPackage, 'name');
      continue;
    }
    if (!spec.startsWith('.')) continue;
    const target = relative(ROOT, resolve(ROOT, dirname(file), spec))
      .split(sep)
      .join('/');
    const candidates = [target.replace(/\.js$/, '.ts'), target.replace(/\.js$/, '.tsx'), target];
    found.set(candidates.find((c) => exists(c)) ?? target, 'path');
  }
  return found;
}

function exists(path) {
  try {
    return statSync(join(ROOT, path)).isFile();
  } catch {
    return false;
  }
}

const isTest = (f) => /(\.test\.tsx?|\.spec\.tsx?)$/.test(f) || /(^|\/)test\//.test(f) || f.startsWith('e2e/');

/** The part a file belongs to. */
function partOf(f) {
  if (isTest(f)) return 'test';
  if (/^packages\/[^/]+\/src\//.test(f)) return `package:${packageOf(f)}`;
  if (/^packages\/[^/]+\/example\.ts$/.test(f)) return 'package-example';
  if (f.startsWith('broker/core/')) return 'core';
  if (['broker/app.ts', 'broker/broker.ts', 'broker/main.ts'].includes(f)) return 'composition';
  if (f.startsWith('broker/cli/')) return 'composition';
  if (f === 'mcp-server/example/demo.ts') return 'script';
  if (f.startsWith('mcp-server/example/')) return 'example';
  if (f.startsWith('broker/http/routes/')) return 'door:oauth';
  if (f.startsWith('broker/http/')) return 'kit';
  if (f.startsWith('admin-ui/')) return 'door:web';
  if (f.startsWith('mcp-server/errand/')) return 'door:mcp';
  if (f.startsWith('a2a/')) return 'door:a2a';
  if (/^broker\/(services|grants|identity|tokens|telemetry)\//.test(f) || f.startsWith('db/')) return 'engine';
  if (['broker/engine.ts', 'broker/config.ts', 'broker/log.ts'].includes(f)) return 'engine';
  return 'unknown';
}

const PACKAGE_PARTS = [...PACKAGES.keys()].map((dir) => `package:${dir}`);
/** Which parts each part may import. */
const ALLOWED = {
  'package:protocol': ['package:protocol'],
  'package:guard': ['package:guard', 'package:protocol'],
  'package:agent': ['package:agent', 'package:protocol'],
  'package-example': PACKAGE_PARTS,
  core: ['core', 'package:protocol'],
  engine: ['core', 'engine', ...PACKAGE_PARTS],
  kit: ['core', 'engine', 'kit', ...PACKAGE_PARTS],
  example: ['core', 'example', ...PACKAGE_PARTS],
};

function allowed(from, to, fromFile, toFile) {
  if (from === 'test' || from === 'script') return true;
  if (from === 'composition') return to !== 'test';
  if (to === 'test' || to === 'composition') return false;
  if (from.startsWith('door:')) {
    // A door: the engine, the kit, core and the packages; its own files; no other door.
    return ['core', 'engine', 'kit', ...PACKAGE_PARTS].includes(to) || to === from;
  }
  return (ALLOWED[from] ?? []).includes(to) && !(from === 'unknown' || fromFile === toFile);
}

const BUILTINS = new Set(builtinModules);
/** A package's bare imports must be declared in its package.json, or the installed tarball breaks. */
function undeclaredModules(file) {
  const pkg = PACKAGES.get(packageOf(file));
  const declared = new Set([...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.peerDependencies ?? {})]);
  return specifiersOf(file)
    .map(bareName)
    .filter((name) => name !== null && !BUILTINS.has(name) && !declared.has(name));
}

const files = sourceFiles();
const graph = new Map(files.map((f) => [f, importsOf(f)]));
const problems = [];

for (const [file, targets] of graph) {
  const from = partOf(file);
  if (from === 'unknown') problems.push(`${file}: belongs to no part of the dependency rule (scripts/check-deps.mjs)`);
  if (from.startsWith('package:')) {
    for (const name of undeclaredModules(file)) {
      problems.push(`${file} imports ${name}, which packages/${packageOf(file)}/package.json does not declare`);
    }
  }
  for (const [target, how] of targets) {
    // Outside its own package, a package is reached by name: the way its users reach it.
    if (target.startsWith('packages/') && how === 'path' && packageOf(target) !== packageOf(file) && from !== 'test') {
      problems.push(`${file} must import ${target} by its package name (@errand/${packageOf(target)})`);
      continue;
    }
    if (!graph.has(target)) {
      if (!exists(target)) problems.push(`${file}: imports ${target}, which does not exist`);
      continue;
    }
    const to = partOf(target);
    if (!allowed(from, to, file, target)) problems.push(`${file} (${from}) must not import ${target} (${to})`);
  }
}

// Cycles among the non-test files (Tarjan's strongly connected components).
const source = files.filter((f) => !isTest(f));
const index = new Map();
const low = new Map();
const onStack = new Set();
const stack = [];
let counter = 0;
const visit = (v) => {
  index.set(v, counter);
  low.set(v, counter++);
  stack.push(v);
  onStack.add(v);
  for (const w of (graph.get(v) ?? new Map()).keys()) {
    if (isTest(w) || !graph.has(w)) continue;
    if (!index.has(w)) {
      visit(w);
      low.set(v, Math.min(low.get(v), low.get(w)));
    } else if (onStack.has(w)) {
      low.set(v, Math.min(low.get(v), index.get(w)));
    }
  }
  if (low.get(v) === index.get(v)) {
    const component = [];
    let w;
    do {
      w = stack.pop();
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    const selfLoop = graph.get(v)?.has(v) ?? false;
    if (component.length > 1 || selfLoop) problems.push(`import cycle: ${component.sort().join(' → ')}`);
  }
};
for (const f of source) if (!index.has(f)) visit(f);

if (problems.length > 0) {
  process.stderr.write(`Dependency rule: ${problems.length} problem(s)\n${problems.map((p) => `  ${p}`).join('\n')}\n`);
  process.exit(1);
}
process.stdout.write(`Dependency rule: ${source.length} source files, no forbidden import, no cycle.\n`);
