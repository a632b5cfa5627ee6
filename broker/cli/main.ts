#!/usr/bin/env node
/**
 * errand-admin: administration without a browser (README "Admin CLI"). A composition root of its
 * own: it reads the same ERRAND_* settings as the broker, opens the same database and master key
 * through the same engine, and calls the same service functions as the admin API, so every rule
 * and audit event is the same; its audit events carry `via: 'cli'` and the OS user.
 *
 * Exit codes: 0 done; 1 refused or failed (the message says why); 2 wrong usage or configuration.
 */
import { statSync } from 'node:fs';
import { userInfo } from 'node:os';
import { parseArgs } from 'node:util';
import { buildBroker, StartupError } from '../broker.js';
import { ConfigError, loadConfig, unknownSettingWarnings } from '../config.js';
import { OAuthError } from '../core/errors.js';
import type { Engine } from '../engine.js';
import { createLogger } from '../log.js';
import { newId } from '../tokens/random.js';
import { BackupError } from './backup.js';
import { COMMANDS, type Command, type CommandContext } from './commands.js';
import { UsageError } from './input.js';

const PROGRAM = 'errand-admin';

export interface CliIo {
  argv: string[];
  env: Record<string, string | undefined>;
  stdin: NodeJS.ReadableStream;
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
}

function overview(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    `Usage: ${PROGRAM} COMMAND [options]     (${PROGRAM} COMMAND --help for a command's options)`,
    '',
    'Reads the same ERRAND_* settings as the broker (ERRAND_DATA_DIR, ERRAND_DB_URL, ERRAND_MASTER_KEY, ...).',
    'Every command takes --json (machine-readable output) and --help.',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Exit codes: 0 done, 1 refused or failed, 2 wrong usage or configuration.',
    '',
  ].join('\n');
}

function commandHelp(c: Command): string {
  return `Usage: ${PROGRAM} ${c.usage} [--json]\n\n${c.help}\n`;
}

/** Runs one command line; resolves to the exit code. */
export async function runCli(io: CliIo): Promise<number> {
  const [name, ...rest] = io.argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(overview());
    return name ? 0 : 2;
  }
  const command = COMMANDS.find((c) => c.name === name);
  const json = rest.includes('--json');
  const fail = (code: string, description: string, exit: number) => {
    if (json) io.stderr.write(`${JSON.stringify({ error: code, error_description: description })}\n`);
    else io.stderr.write(`${PROGRAM}: ${description}\n`);
    return exit;
  };
  if (!command) return fail('usage', `unknown command "${name}" (${PROGRAM} --help lists them)`, 2);

  let values: CommandContext['values'];
  let positionals: string[];
  try {
    if (rest.some((a) => a === '--password' || a.startsWith('--password='))) {
      throw new UsageError(
        'passwords are not taken on the command line (ps and the shell history would show them): use --password-stdin or --password-file',
      );
    }
    ({ values, positionals } = parseArgs({
      args: rest,
      options: { ...command.options, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    }));
    if (values.help === true) {
      io.stdout.write(commandHelp(command));
      return 0;
    }
    if (positionals.length !== command.positionals.length) {
      throw new UsageError(
        command.positionals.length === 0
          ? `${name} takes no arguments (got ${positionals.join(' ')})`
          : `${name} needs ${command.positionals.join(' ')}`,
      );
    }
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    return fail('usage', `${message}\nUsage: ${PROGRAM} ${command.usage}`, 2);
  }

  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(io.env);
  } catch (err) {
    if (err instanceof ConfigError) return fail('invalid_configuration', err.message, 2);
    throw err;
  }
  for (const warning of unknownSettingWarnings(io.env)) io.stderr.write(`${PROGRAM}: warning: ${warning}\n`);

  const requestId = newId('req').slice(4);
  let broker: Awaited<ReturnType<typeof buildBroker>> | null = null;
  const engine = async (): Promise<Engine> => {
    if (!broker) {
      broker = await buildBroker(config, {
        // Operational lines of the engine go to stderr, and only warnings: stdout is the command's.
        log: createLogger({ level: 'warn', write: (line) => io.stderr.write(line) }),
        auditOrigin: { via: 'cli', os_user: osUser() },
        builtInResources: false,
      });
    }
    return broker.deps;
  };
  const ctx: CommandContext = {
    values,
    positionals,
    stdin: io.stdin,
    engine,
    config: () => config,
    requestId,
    now: () => Math.floor(Date.now() / 1000),
    async actingAdmin() {
      const e = await engine();
      const as = typeof values.as === 'string' ? values.as : undefined;
      if (as) {
        const user = await e.users.findByUsername(as);
        if (user?.role !== 'admin' || user.disabledAt !== null) {
          throw new UsageError(`--as: "${as}" is not an active administrator`);
        }
        return { id: user.id, username: user.username };
      }
      const first = (await e.users.list()).find((u) => u.role === 'admin' && u.disabledAt === null);
      if (!first)
        throw new OAuthError('conflict', `there is no administrator yet: create one with ${PROGRAM} bootstrap-admin`);
      return { id: first.id, username: first.username };
    },
  };

  try {
    const usesEngine = typeof command.usesEngine === 'function' ? command.usesEngine(positionals) : command.usesEngine;
    if (usesEngine && name !== 'bootstrap-admin') requireInstallation(config);
    const out = await command.run(ctx);
    if (out.raw) io.stdout.write(out.text);
    else if (json) io.stdout.write(`${JSON.stringify(out.json)}\n`);
    else io.stdout.write(`${out.text}\n`);
    return out.exitCode ?? 0;
  } catch (err) {
    if (err instanceof UsageError) return fail('usage', `${err.message}\nUsage: ${PROGRAM} ${command.usage}`, 2);
    if (err instanceof OAuthError) return fail(err.code, err.message, 1);
    if (err instanceof BackupError) return fail('refused', err.message, 1);
    if (err instanceof StartupError) return fail('startup_failed', err.message, 2);
    return fail('failed', err instanceof Error ? err.message : String(err), 1);
  } finally {
    await (broker as Awaited<ReturnType<typeof buildBroker>> | null)?.close();
  }
}

/** Who runs the command, as the operating system knows them (recorded in the audit events). */
function osUser(): string {
  try {
    return userInfo().username;
  } catch {
    return String(process.getuid?.() ?? 'unknown');
  }
}

/** Commands other than bootstrap-admin act on an existing installation, never set up a new one. */
function requireInstallation(config: ReturnType<typeof loadConfig>): void {
  if (!config.db.url.startsWith('file:')) return;
  const path = config.db.url.slice('file:'.length);
  if (path === ':memory:') return;
  // Checked before the engine opens (and would create) the file.
  let size = 0;
  try {
    size = statSync(path).size;
  } catch {
    size = 0;
  }
  if (size === 0) {
    throw new OAuthError(
      'not_found',
      `there is no installation at ${path}: check ERRAND_DATA_DIR or ERRAND_DB_URL, or start the broker (or run ${PROGRAM} bootstrap-admin) to create one`,
    );
  }
}

const code = await runCli({
  argv: process.argv.slice(2),
  env: process.env,
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
});
// Flush what was written, then leave: an open handle (stdin) must not keep the process alive.
process.stdout.write('', () => process.exit(code));
