import { writeFileSync } from 'node:fs';
import type { ParseArgsConfig } from 'node:util';
import { AUTH_METHOD } from '@errand/protocol';
import { z } from 'zod';
import { OAuthError } from '../core/errors.js';
import type { Engine } from '../engine.js';
import { AuditQuerySchema, auditFilter } from '../http/api.js';
import { parseParams } from '../http/params.js';
import {
  CreateClientSchema,
  CreateResourceSchema,
  clientView,
  createClient,
  createResource,
  createUser,
} from '../services/admin.js';
import { auditEventView } from '../services/api-views.js';
import { BootstrapAdminSchema, bootstrapAdmin } from '../services/bootstrap-admin.js';
import { ResetPasswordSchema, resetPassword } from '../services/people.js';
import { taskView } from '../services/tasks.js';
import { CreateTrustedIssuerSchema, createTrustedIssuer, trustedIssuerView } from '../services/trusted-issuers.js';
import { describeBackup, restoreBackup, takeBackup } from './backup.js';
import type { Command } from './command.js';
import { readJson, readPassword, UsageError } from './input.js';
import { policyCommand } from './policy-command.js';

type Options = NonNullable<ParseArgsConfig['options']>;

const PASSWORD_OPTIONS: Options = {
  'password-stdin': { type: 'boolean' },
  'password-file': { type: 'string' },
};
const AS_OPTION: Options = { as: { type: 'string' } };

const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
const list = (v: unknown) => (Array.isArray(v) ? (v as string[]) : []);

function table(rows: string[][]): string {
  if (rows.length === 0) return '';
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

async function userByName(engine: Engine, username: string) {
  const user = await engine.users.findByUsername(username);
  if (!user) throw new OAuthError('not_found', `no account named "${username}"`);
  return user;
}

const bootstrapAdminCommand: Command = {
  name: 'bootstrap-admin',
  summary: 'create the first administrator',
  usage:
    'bootstrap-admin --username NAME (--password-stdin | --password-file PATH) [--display-name TEXT] [--allow-existing]',
  help: 'Creates the first administrator without a browser. Refused when an administrator exists, unless --allow-existing (then another administrator is added). The password needs at least 12 characters. Creates the installation (database, master key) when there is none yet.',
  options: {
    username: { type: 'string' },
    'display-name': { type: 'string' },
    'allow-existing': { type: 'boolean' },
    ...PASSWORD_OPTIONS,
  },
  positionals: [],
  usesEngine: true,
  async run(ctx) {
    const username = str(ctx.values.username);
    if (!username) throw new UsageError('--username is required');
    const password = await readPassword(ctx.values, ctx.stdin);
    const displayName = str(ctx.values['display-name']);
    const input = parseParams(BootstrapAdminSchema, {
      username,
      password,
      ...(displayName ? { display_name: displayName } : {}),
    });
    const engine = await ctx.engine();
    const hasAdmin = (await engine.users.countAdmins()) > 0;
    let user: { id: string; username: string; role: string };
    if (hasAdmin && ctx.values['allow-existing'] === true) {
      const actor = await ctx.actingAdmin();
      user = await createUser(engine, { ...input, role: 'admin' }, { adminId: actor.id, requestId: ctx.requestId });
    } else if (hasAdmin) {
      throw new OAuthError('conflict', 'an administrator already exists: pass --allow-existing to add another one');
    } else {
      user = await bootstrapAdmin(engine, input, { source: 'cli', requestId: ctx.requestId });
    }
    return {
      json: { user_id: user.id, username: user.username, role: user.role },
      text: `administrator ${user.username} created (${user.id})`,
    };
  },
};

const resetPasswordCommand: Command = {
  name: 'reset-password',
  summary: 'set a new password for an account (ends its sessions)',
  usage: 'reset-password --username NAME (--password-stdin | --password-file PATH)',
  help: 'Sets a new password (at least 12 characters) for an account and signs it out everywhere. Works when every administrator has lost their password; a sign-in lock-out already running still runs out by itself.',
  options: { username: { type: 'string' }, ...PASSWORD_OPTIONS },
  positionals: [],
  usesEngine: true,
  async run(ctx) {
    const username = str(ctx.values.username);
    if (!username) throw new UsageError('--username is required');
    const input = parseParams(ResetPasswordSchema, { password: await readPassword(ctx.values, ctx.stdin) });
    const engine = await ctx.engine();
    const user = await userByName(engine, username);
    await resetPassword(engine, user.id, input, { userId: null, requestId: ctx.requestId });
    return {
      json: { user_id: user.id, username: user.username, password_reset: true },
      text: `password of ${user.username} reset; their sessions have ended`,
    };
  },
};

const createAgentCommand: Command = {
  name: 'create-agent',
  summary: 'register an agent',
  usage:
    'create-agent --name NAME [--owner USERNAME] [--auth-method METHOD] [--jwks-file PATH | --jwks-uri URL] [--scope S]... [--resource URL]... [--grant-type G]... [--dpop] [--allow-static-secret] [--as USERNAME]',
  help: `Registers an agent as POST /api/admin/clients does (kind "agent"). --auth-method: ${AUTH_METHOD.privateKeyJwt} (default; needs --jwks-file or --jwks-uri), ${AUTH_METHOD.workloadFederation}, or ${AUTH_METHOD.clientSecretBasic} with --allow-static-secret (the secret is printed once). The owner defaults to the acting administrator.`,
  options: {
    name: { type: 'string' },
    owner: { type: 'string' },
    'auth-method': { type: 'string' },
    'jwks-file': { type: 'string' },
    'jwks-uri': { type: 'string' },
    scope: { type: 'string', multiple: true },
    resource: { type: 'string', multiple: true },
    'grant-type': { type: 'string', multiple: true },
    dpop: { type: 'boolean' },
    'allow-static-secret': { type: 'boolean' },
    ...AS_OPTION,
  },
  positionals: [],
  usesEngine: true,
  async run(ctx) {
    const v = ctx.values;
    if (!str(v.name)) throw new UsageError('--name is required');
    const jwksFile = str(v['jwks-file']);
    const jwks = jwksFile ? await readJson(jwksFile, ctx.stdin, '--jwks-file') : undefined;
    const engine = await ctx.engine();
    const actor = await ctx.actingAdmin();
    const owner = str(v.owner);
    const body = {
      kind: 'agent',
      name: v.name,
      ...(owner ? { owner_id: (await userByName(engine, owner)).id } : {}),
      ...(str(v['auth-method']) ? { token_endpoint_auth_method: v['auth-method'] } : {}),
      ...(jwks !== undefined ? { jwks } : {}),
      ...(str(v['jwks-uri']) ? { jwks_uri: v['jwks-uri'] } : {}),
      ...(list(v.scope).length ? { scope: list(v.scope).flatMap((s) => s.split(/\s+/)) } : {}),
      resources: list(v.resource),
      ...(list(v['grant-type']).length ? { grant_types: list(v['grant-type']) } : {}),
      ...(v.dpop === true ? { dpop_bound_access_tokens: true } : {}),
      ...(v['allow-static-secret'] === true ? { allow_static_secret: true } : {}),
    };
    const input = parseParams(CreateClientSchema, body, 'invalid_client_metadata');
    const created = await createClient(engine, input, actor.id, ctx.requestId);
    const secret = 'client_secret' in created ? `\nclient secret (shown once): ${created.client_secret}` : '';
    return { json: created, text: `agent ${created.name} registered: client_id ${created.client_id}${secret}` };
  },
};

const listAgentsCommand: Command = {
  name: 'list-agents',
  summary: 'list the agents',
  usage: 'list-agents',
  help: 'Lists every agent (kind "agent") with its status, owner and assurance level.',
  options: {},
  positionals: [],
  usesEngine: true,
  async run(ctx) {
    const engine = await ctx.engine();
    const agents = (await engine.clients.list()).filter((c) => c.kind === 'agent').map(clientView);
    const rows = [['CLIENT_ID', 'STATUS', 'ASSURANCE', 'OWNER', 'NAME']];
    for (const a of agents) rows.push([a.client_id, a.status, a.assurance_level ?? '-', a.owner_id ?? '-', a.name]);
    return { json: { agents }, text: agents.length ? table(rows) : 'no agents yet: add one with create-agent' };
  },
};

const createResourceCommand: Command = {
  name: 'create-resource',
  summary: 'register a resource (an API or tool server)',
  usage: 'create-resource --url URL --name NAME --scope S [--scope S]... [--min-assurance LEVEL] [--public]',
  help: 'Registers a protected resource and the scopes it offers, as POST /api/admin/resources does. --public: quarantined clients may get tokens for it.',
  options: {
    url: { type: 'string' },
    name: { type: 'string' },
    scope: { type: 'string', multiple: true },
    'min-assurance': { type: 'string' },
    public: { type: 'boolean' },
  },
  positionals: [],
  usesEngine: true,
  async run(ctx) {
    const v = ctx.values;
    if (!str(v.url)) throw new UsageError('--url is required');
    if (!str(v.name)) throw new UsageError('--name is required');
    if (list(v.scope).length === 0) throw new UsageError('at least one --scope is required');
    const input = parseParams(CreateResourceSchema, {
      url: v.url,
      name: v.name,
      scopes: list(v.scope).flatMap((s) => s.split(/\s+/)),
      ...(str(v['min-assurance']) ? { min_assurance: v['min-assurance'] } : {}),
      ...(v.public === true ? { public: true } : {}),
    });
    const resource = await createResource(await ctx.engine(), input);
    return { json: resource, text: `resource ${resource.url} registered (${resource.id})` };
  },
};

const listResourcesCommand: Command = {
  name: 'list-resources',
  summary: 'list the resources',
  usage: 'list-resources',
  help: 'Lists every registered resource with its scopes.',
  options: {},
  positionals: [],
  usesEngine: true,
  async run(ctx) {
    const resources = await (await ctx.engine()).clients.listResources();
    const rows = [['ID', 'URL', 'SCOPES', 'NAME']];
    for (const r of resources) rows.push([r.id, r.url, r.scopes.join(' '), r.name]);
    return {
      json: { resources },
      text: resources.length ? table(rows) : 'no resources yet: add one with create-resource',
    };
  },
};

const createTrustedIssuerCommand: Command = {
  name: 'create-trusted-issuer',
  summary: 'register a trusted workload issuer',
  usage: 'create-trusted-issuer --file PATH|- [--as USERNAME]',
  help: 'Registers a trusted workload issuer from a JSON document shaped as the body of POST /api/admin/trusted-issuers (kind, name, issuer, jwks or jwks_uri, rules); - reads it from standard input.',
  options: { file: { type: 'string' }, ...AS_OPTION },
  positionals: [],
  usesEngine: true,
  async run(ctx) {
    const file = str(ctx.values.file);
    if (!file) throw new UsageError('--file is required (a JSON document, or - for standard input)');
    const input = parseParams(CreateTrustedIssuerSchema, await readJson(file, ctx.stdin, '--file'));
    const engine = await ctx.engine();
    const actor = await ctx.actingAdmin();
    const created = await createTrustedIssuer(
      { ...engine, issuer: engine.config.issuer },
      input,
      actor.id,
      ctx.requestId,
    );
    return { json: trustedIssuerView(created), text: `trusted issuer ${created.issuer} registered (${created.id})` };
  },
};

const listTrustedIssuersCommand: Command = {
  name: 'list-trusted-issuers',
  summary: 'list the trusted workload issuers',
  usage: 'list-trusted-issuers',
  help: 'Lists every trusted workload issuer with its kind, status and number of rules.',
  options: {},
  positionals: [],
  usesEngine: true,
  async run(ctx) {
    const issuers = (await (await ctx.engine()).trustedIssuers.list()).map(trustedIssuerView);
    const rows = [['ID', 'KIND', 'STATUS', 'RULES', 'ISSUER']];
    for (const t of issuers) rows.push([t.id, t.kind, t.status, String(t.rules.length), t.issuer]);
    return {
      json: { trusted_issuers: issuers },
      text: issuers.length ? table(rows) : 'no trusted issuers yet: add one with create-trusted-issuer',
    };
  },
};

const rotateKeysCommand: Command = {
  name: 'rotate-keys',
  summary: 'start signing with a new key soon',
  usage: 'rotate-keys',
  help: 'Brings the next signing key forward (or creates one): it signs once it has been published long enough for verifiers that cache the JWKS, as POST /api/admin/keys/rotate does. Earlier keys stay published until their tokens expire.',
  options: {},
  positionals: [],
  usesEngine: true,
  async run(ctx) {
    const engine = await ctx.engine();
    const rotated = await engine.keys.rotateNow(engine.config.keys.minPublishAhead);
    return {
      json: { kid: rotated.kid, activates_at: rotated.activatesAt },
      text: `key ${rotated.kid} signs from ${new Date(rotated.activatesAt * 1000).toISOString()}`,
    };
  },
};

const endTaskCommand: Command = {
  name: 'end-task',
  summary: 'end a task (and its sub-tasks; their tokens are revoked)',
  usage: 'end-task TASK_ID [--as USERNAME]',
  help: 'Ends a task as an administrator does (state canceled): its sub-tasks end too and every token issued for them is revoked.',
  options: { ...AS_OPTION },
  positionals: ['TASK_ID'],
  usesEngine: true,
  async run(ctx) {
    const engine = await ctx.engine();
    const actor = await ctx.actingAdmin();
    const task = await engine.taskService.end(
      { kind: 'admin', userId: actor.id },
      ctx.positionals[0]!,
      'canceled',
      ctx.requestId,
    );
    return { json: taskView(task), text: `task ${task.id} ended (${task.state})` };
  },
};

/** The admin API's audit filters, without its page limit: an export takes every matching event. */
const ExportQuerySchema = AuditQuerySchema.extend({
  limit: z.coerce.number().int().min(1).max(10_000_000).default(10_000_000),
});

const exportAuditCommand: Command = {
  name: 'export-audit',
  summary: 'export audit events as JSON lines',
  usage:
    'export-audit [--type T] [--user-id ID] [--client-id ID] [--agent ID] [--task-id ID] [--result allowed|denied] [--from EPOCH] [--to EPOCH] [--limit N] [--output PATH]',
  help: 'Writes the matching audit events, oldest first, one JSON object a line, to standard output or --output (created owner-only). The filters are those of GET /api/admin/audit.',
  options: {
    type: { type: 'string' },
    'user-id': { type: 'string' },
    'client-id': { type: 'string' },
    agent: { type: 'string' },
    'task-id': { type: 'string' },
    result: { type: 'string' },
    from: { type: 'string' },
    to: { type: 'string' },
    limit: { type: 'string' },
    output: { type: 'string' },
  },
  positionals: [],
  usesEngine: true,
  async run(ctx) {
    const v = ctx.values;
    const query: Record<string, unknown> = {};
    for (const [option, field] of [
      ['type', 'type'],
      ['user-id', 'user_id'],
      ['client-id', 'client_id'],
      ['agent', 'agent'],
      ['task-id', 'task_id'],
      ['result', 'result'],
      ['from', 'from'],
      ['to', 'to'],
      ['limit', 'limit'],
    ] as const) {
      if (str(v[option]) !== undefined) query[field] = v[option];
    }
    const q = parseParams(ExportQuerySchema, query);
    const events = (await (await ctx.engine()).audit.query(auditFilter(q))).reverse();
    const lines = events.map((e) => `${JSON.stringify(auditEventView(e))}\n`).join('');
    const output = str(v.output);
    if (output) {
      try {
        writeFileSync(output, lines, { mode: 0o600, flag: 'wx' });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        throw new OAuthError('conflict', `--output: ${output} exists; choose a new file`);
      }
      return { json: { events: events.length, file: output }, text: `${events.length} events written to ${output}` };
    }
    return { json: undefined, text: lines, raw: true };
  },
};

const backupCommand: Command = {
  name: 'backup',
  summary: 'copy the database consistently, also while the broker runs',
  usage: 'backup FILE [--include-master-key] [--force]',
  help: 'Writes a consistent copy of the database (SQLite VACUUM INTO) to FILE, owner-only. The master key is NOT included unless --include-master-key: without it, keep the master key (ERRAND_MASTER_KEY or the key file) safe apart from the backup, as restoring needs it. --force overwrites FILE. For the embedded file database only: back PostgreSQL up with pg_dump -Fc.',
  options: { 'include-master-key': { type: 'boolean' }, force: { type: 'boolean' } },
  positionals: ['FILE'],
  usesEngine: false,
  async run(ctx) {
    const info = takeBackup(ctx.config(), ctx.positionals[0]!, {
      includeMasterKey: ctx.values['include-master-key'] === true,
      force: ctx.values.force === true,
      now: ctx.now(),
    });
    const key = info.includes_master_key
      ? 'It INCLUDES the master key: keep it as secret as the key itself.'
      : 'It does NOT include the master key: restoring needs the same master key (ERRAND_MASTER_KEY or the key file).';
    return {
      json: info,
      text: `backup written to ${info.file} (schema ${info.schema_version ?? 'none'}, ${info.signing_keys} signing keys).\n${key}`,
    };
  },
};

const restoreCommand: Command = {
  name: 'restore',
  summary: 'restore a backup into a stopped installation',
  usage: 'restore FILE [--force]',
  help: "Replaces the configured database with the backup in FILE. Refused while any process has the database open, when it already holds an installation (unless --force), and when the master key does not decrypt the backup's signing keys. The master key is the configured one; when none is set and the backup includes one, it is written to the key file. Start the broker afterwards: migrations run at start. For the embedded file database only: restore PostgreSQL with pg_restore.",
  options: { force: { type: 'boolean' }, check: { type: 'boolean' } },
  positionals: ['FILE'],
  usesEngine: false,
  async run(ctx) {
    if (ctx.values.check === true) {
      const info = describeBackup(ctx.positionals[0]!);
      return { json: info, text: JSON.stringify(info, null, 2) };
    }
    const result = restoreBackup(ctx.config(), ctx.positionals[0]!, { force: ctx.values.force === true });
    return {
      json: result,
      text: `restored ${result.file} into ${result.database} (master key from the ${result.master_key_source}); start the broker on it`,
    };
  },
};

export type { Command, CommandContext, Output } from './command.js';

export const COMMANDS: Command[] = [
  bootstrapAdminCommand,
  resetPasswordCommand,
  createAgentCommand,
  listAgentsCommand,
  createResourceCommand,
  listResourcesCommand,
  createTrustedIssuerCommand,
  listTrustedIssuersCommand,
  rotateKeysCommand,
  endTaskCommand,
  exportAuditCommand,
  backupCommand,
  restoreCommand,
  policyCommand,
];
