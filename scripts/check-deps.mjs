#!/usr/bin/env node
/**
 * The dependency rule, checked on every `npm run lint`: which part of Errand may import which, and
 * no import cycles. It reads the import specifiers of every source file (type-only imports count:
 * they are still knowledge one part has of another) and fails with one line per violation.
 *
 *   core          broker/core                   imports nothing of the project but itself
 *   libraries     broker/guard, broker/agent-sdk run in other people's processes: core only
 *   engine        services, grants, identity, tokens, telemetry, engine.ts, config.ts, log.ts, db/
 *   HTTP kit      broker/http/*.ts, broker/http/middleware   shared by the doors; engine and core
 *   doors         broker/http/routes (OAuth and admin APIs), admin-ui (web), mcp-server/errand (MCP),
 *                 a2a (A2A): engine, kit and core, never another door
 *   composition   broker/app.ts, broker/broker.ts, broker/main.ts: everything; imported by nobody
 *
 * Tests, browser specs, the bench and the example server's demo script may import anything; the
 * example tool server itself is a guard user and may import only the guard and core.
 *
 * Usage: node scripts/check-deps.mjs   (exit 1 on a violation)
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), '..');
const SOURCE_DIRS = ['broker', 'db', 'admin-ui', 'mcp-server', 'a2a', 'e2e'];

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

/** The project files a file imports (relative specifiers resolved; `.js` names the `.ts` source). */
function importsOf(file) {
  const text = withoutComments(readFileSync(join(ROOT, file), 'utf8'));
  const found = new Set();
  for (const re of SPECIFIERS) {
    for (const m of text.matchAll(re)) {
      const spec = m[1];
      if (!spec.startsWith('.')) continue;
      const target = relative(ROOT, resolve(ROOT, dirname(file), spec))
        .split(sep)
        .join('/');
      const candidates = [target.replace(/\.js$/, '.ts'), target.replace(/\.js$/, '.tsx'), target];
      found.add(candidates.find((c) => exists(c)) ?? target);
    }
  }
  return [...found];
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
  if (f.startsWith('broker/core/')) return 'core';
  if (f.startsWith('broker/guard/') || f.startsWith('broker/agent-sdk/')) return 'library';
  if (['broker/app.ts', 'broker/broker.ts', 'broker/main.ts'].includes(f)) return 'composition';
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

/** Which parts each part may import. */
const ALLOWED = {
  core: ['core'],
  library: ['core', 'library'],
  engine: ['core', 'engine', 'library'],
  kit: ['core', 'engine', 'kit', 'library'],
  example: ['core', 'library', 'example'],
};

function allowed(from, to, fromFile, toFile) {
  if (from === 'test' || from === 'script') return true;
  if (from === 'composition') return to !== 'test';
  if (to === 'test' || to === 'composition') return false;
  if (from.startsWith('door:')) {
    // A door: the engine, the kit, core and the client libraries; its own files; no other door.
    return ['core', 'engine', 'kit', 'library'].includes(to) || to === from;
  }
  // The client libraries may use one engine file: the compact JWS verifier they share.
  if (from === 'library' && toFile === 'broker/tokens/jws.ts') return true;
  return (ALLOWED[from] ?? []).includes(to) && !(from === 'unknown' || fromFile === toFile);
}

const files = sourceFiles();
const graph = new Map(files.map((f) => [f, importsOf(f)]));
const problems = [];

for (const [file, targets] of graph) {
  const from = partOf(file);
  if (from === 'unknown') problems.push(`${file}: belongs to no part of the dependency rule (scripts/check-deps.mjs)`);
  for (const target of targets) {
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
  for (const w of graph.get(v) ?? []) {
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
    const selfLoop = (graph.get(v) ?? []).includes(v);
    if (component.length > 1 || selfLoop) problems.push(`import cycle: ${component.sort().join(' → ')}`);
  }
};
for (const f of source) if (!index.has(f)) visit(f);

if (problems.length > 0) {
  process.stderr.write(`Dependency rule: ${problems.length} problem(s)\n${problems.map((p) => `  ${p}`).join('\n')}\n`);
  process.exit(1);
}
process.stdout.write(`Dependency rule: ${source.length} source files, no forbidden import, no cycle.\n`);
