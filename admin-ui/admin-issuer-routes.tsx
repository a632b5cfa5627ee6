import { AUTH_METHOD } from '@errand/protocol';
import { type Context, Hono } from 'hono';
import { OAuthError } from '../broker/core/errors.js';
import type { Engine } from '../broker/engine.js';
import type { AppEnv } from '../broker/http/types.js';
import {
  CreateTrustedIssuerSchema,
  createTrustedIssuer,
  deleteTrustedIssuer,
  type TrustedIssuerDeps,
  UpdateTrustedIssuerSchema,
  updateTrustedIssuer,
} from '../broker/services/trusted-issuers.js';
import { type FormBody, field, firstIssue, parseJwks, readForm } from './forms.js';
import {
  EMPTY_ISSUER_FORM,
  type IssuerFormValues,
  issuerFormValues,
  type RuleValues,
  TrustedIssuerFormPage,
  TrustedIssuersPage,
} from './pages/admin-issuers.js';
import { ConfirmPage } from './pages/confirm.js';
import { MessagePage } from './pages/message.js';

const NOTICES: Record<string, string> = {
  added: 'Trusted issuer added.',
  saved: 'Saved.',
  disabled: 'Disabled: its tokens no longer authenticate any agent.',
  enabled: 'Enabled.',
  deleted: 'Deleted: its tokens no longer authenticate any agent.',
};

const MAX_RULES = 100;

/** The form's rules as the API's `rules`: blank rows dropped, `claim = pattern` lines grouped by claim. */
function rulesOf(values: IssuerFormValues): { rules?: unknown[]; error?: string } {
  const rules: unknown[] = [];
  for (const [i, r] of values.rules.entries()) {
    if (!r.agent_id && !r.match.trim()) continue;
    const match: Record<string, string[]> = {};
    for (const line of r.match
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter(Boolean)) {
      const eq = line.indexOf('=');
      if (eq <= 0) return { error: `rule ${i + 1}: write each match as claim = pattern ("${line}" has no claim)` };
      const claim = line.slice(0, eq).trim();
      match[claim] = [...(match[claim] ?? []), line.slice(eq + 1).trim()];
    }
    rules.push({
      match,
      agent_id: r.agent_id,
      assurance: r.assurance,
      ...(r.attestation_claim || r.attestation_value
        ? { attestation: { claim: r.attestation_claim, value: r.attestation_value } }
        : {}),
    });
  }
  return { rules };
}

function formValues(body: FormBody, kind?: string): IssuerFormValues {
  const count = Math.min(Number.parseInt(field(body, 'rule_count'), 10) || 0, MAX_RULES + 1);
  const rules: RuleValues[] = [];
  for (let i = 0; i < count; i++) {
    rules.push({
      agent_id: field(body, `rule${i}_agent`),
      match: field(body, `rule${i}_match`).slice(0, 20_000),
      assurance: field(body, `rule${i}_assurance`) === 'NHI-AAL3' ? 'NHI-AAL3' : 'NHI-AAL2',
      attestation_claim: field(body, `rule${i}_attestation_claim`).trim().slice(0, 500),
      attestation_value: field(body, `rule${i}_attestation_value`).trim().slice(0, 500),
    });
  }
  return {
    kind: kind ?? field(body, 'kind'),
    name: field(body, 'name').trim().slice(0, 300),
    issuer: field(body, 'issuer').trim().slice(0, 4096),
    jwks: field(body, 'jwks').slice(0, 200_000),
    jwks_uri: field(body, 'jwks_uri').trim().slice(0, 4096),
    audience: field(body, 'audience').trim().slice(0, 4096),
    max_lifetime: field(body, 'max_lifetime').trim().slice(0, 20),
    rules: rules.filter((r) => r.agent_id || r.match.trim()),
  };
}

/**
 * Trusted workload issuers in the console (administrators only, under `/admin/*`): list, add, edit,
 * disable, enable and delete, through the same service as `/api/admin/trusted-issuers`.
 */
export function adminIssuerRoutes(deps: Engine) {
  const app = new Hono<AppEnv>();
  const csrf = (c: Context<AppEnv>) => c.get('csrfToken') ?? '';
  const me = (c: Context<AppEnv>) => c.get('user')!;
  const issuerDeps: TrustedIssuerDeps = {
    db: deps.db,
    trustedIssuers: deps.trustedIssuers,
    clients: deps.clients,
    audit: deps.audit,
    clock: deps.clock,
    issuer: deps.config.issuer,
  };
  const pathOf = (id: string) => `/admin/trusted-issuers/${encodeURIComponent(id)}`;
  const workloadAgents = async () =>
    (await deps.clients.list()).filter((a) => a.kind === 'agent' && a.authMethod === AUTH_METHOD.workloadFederation);

  const formPage = async (c: Context<AppEnv>, values: IssuerFormValues, id?: string, error?: string) => {
    const notice = NOTICES[c.req.query('done') ?? ''];
    return c.html(
      <TrustedIssuerFormPage
        user={me(c)}
        csrf={csrf(c)}
        values={values}
        agents={await workloadAgents()}
        defaultAudience={deps.config.issuer}
        {...(id ? { id } : {})}
        {...(notice && !error ? { notice } : {})}
        {...(error ? { error } : {})}
      />,
      error ? 400 : 200,
    );
  };
  const notFound = (c: Context<AppEnv>) =>
    c.html(
      <MessagePage title="Not found" message="There is no such trusted issuer." user={me(c)} csrf={csrf(c)} />,
      404,
    );
  /** Runs a change; a refusal the administrator can fix is shown above the form. */
  const attempt = async (
    c: Context<AppEnv>,
    values: IssuerFormValues,
    id: string | undefined,
    run: () => Promise<string>,
  ) => {
    try {
      return c.redirect(await run(), 303);
    } catch (err) {
      if (err instanceof OAuthError && err.code === 'not_found') return notFound(c);
      if (err instanceof OAuthError && err.status < 500) return formPage(c, values, id, err.message);
      throw err;
    }
  };

  app.get('/admin/trusted-issuers', async (c) => {
    const notice = NOTICES[c.req.query('done') ?? ''];
    const [issuers, clients] = await Promise.all([deps.trustedIssuers.list(), deps.clients.list()]);
    return c.html(
      <TrustedIssuersPage
        user={me(c)}
        csrf={csrf(c)}
        issuers={issuers}
        agentNames={new Map(clients.map((a) => [a.id, a.name]))}
        {...(notice ? { notice } : {})}
      />,
    );
  });

  app.get('/admin/trusted-issuers/new', (c) => formPage(c, EMPTY_ISSUER_FORM));
  app.post('/admin/trusted-issuers/new', async (c) => {
    const values = formValues(await readForm(c));
    const jwks = parseJwks(values.jwks);
    const rules = rulesOf(values);
    if (jwks.error || rules.error) return formPage(c, values, undefined, jwks.error ?? rules.error);
    const parsed = CreateTrustedIssuerSchema.safeParse({
      kind: values.kind,
      name: values.name,
      issuer: values.issuer,
      ...(values.jwks_uri ? { jwks_uri: values.jwks_uri } : {}),
      ...(jwks.value ? { jwks: jwks.value } : {}),
      ...(values.audience ? { audience: values.audience } : {}),
      ...(values.max_lifetime ? { max_lifetime: Number(values.max_lifetime) } : {}),
      rules: rules.rules,
    });
    if (!parsed.success) return formPage(c, values, undefined, firstIssue(parsed.error));
    return attempt(c, values, undefined, async () => {
      const created = await createTrustedIssuer(issuerDeps, parsed.data, me(c).id, c.var.requestId, c.var.address);
      return `/admin/trusted-issuers?done=added#${created.id}`;
    });
  });

  app.get('/admin/trusted-issuers/:id', async (c) => {
    const found = await deps.trustedIssuers.get(c.req.param('id'));
    if (!found) return notFound(c);
    return formPage(c, issuerFormValues(found), found.id);
  });
  app.post('/admin/trusted-issuers/:id', async (c) => {
    const id = c.req.param('id');
    const found = await deps.trustedIssuers.get(id);
    if (!found) return notFound(c);
    const values = { ...formValues(await readForm(c), found.kind), issuer: found.issuer };
    const jwks = parseJwks(values.jwks);
    const rules = rulesOf(values);
    if (jwks.error || rules.error) return formPage(c, values, id, jwks.error ?? rules.error);
    const parsed = UpdateTrustedIssuerSchema.safeParse({
      name: values.name,
      jwks_uri: values.jwks_uri || null,
      jwks: jwks.value ?? null,
      ...(values.audience ? { audience: values.audience } : {}),
      ...(values.max_lifetime ? { max_lifetime: Number(values.max_lifetime) } : {}),
      rules: rules.rules,
    });
    if (!parsed.success) return formPage(c, values, id, firstIssue(parsed.error));
    return attempt(c, values, id, async () => {
      await updateTrustedIssuer(issuerDeps, id, parsed.data, me(c).id, c.var.requestId, c.var.address);
      return `${pathOf(id)}?done=saved`;
    });
  });

  const setStatus = async (c: Context<AppEnv>, status: 'active' | 'disabled') => {
    const id = c.req.param('id') ?? '';
    await readForm(c);
    try {
      await updateTrustedIssuer(issuerDeps, id, { status }, me(c).id, c.var.requestId, c.var.address);
    } catch (err) {
      if (err instanceof OAuthError && err.code === 'not_found') return notFound(c);
      throw err;
    }
    return c.redirect(`/admin/trusted-issuers?done=${status === 'active' ? 'enabled' : 'disabled'}`, 303);
  };
  app.post('/admin/trusted-issuers/:id/enable', (c) => setStatus(c, 'active'));
  app.post('/admin/trusted-issuers/:id/disable', (c) => setStatus(c, 'disabled'));
  app.get('/admin/trusted-issuers/:id/disable', async (c) => {
    const found = await deps.trustedIssuers.get(c.req.param('id'));
    if (!found) return notFound(c);
    return c.html(
      <ConfirmPage
        user={me(c)}
        csrf={csrf(c)}
        title={`Disable ${found.name}?`}
        consequence={
          <p>
            Tokens from <code>{found.issuer}</code> stop authenticating the {found.rules.length} agent(s) its rules map
            to, until it is enabled again. Tokens those agents already hold keep their lifetime.
          </p>
        }
        action={`${pathOf(found.id)}/disable`}
        confirmLabel={`Disable ${found.name}`}
        cancelHref="/admin/trusted-issuers"
      />,
    );
  });

  app.get('/admin/trusted-issuers/:id/delete', async (c) => {
    const found = await deps.trustedIssuers.get(c.req.param('id'));
    if (!found) return notFound(c);
    return c.html(
      <ConfirmPage
        user={me(c)}
        csrf={csrf(c)}
        title={`Delete ${found.name}?`}
        consequence={
          <p>
            Tokens from <code>{found.issuer}</code> stop authenticating agents at once, and its {found.rules.length}{' '}
            rule(s) are removed. This cannot be undone.
          </p>
        }
        action={`${pathOf(found.id)}/delete`}
        confirmLabel={`Delete ${found.name}`}
        cancelHref="/admin/trusted-issuers"
      />,
    );
  });
  app.post('/admin/trusted-issuers/:id/delete', async (c) => {
    await readForm(c);
    try {
      await deleteTrustedIssuer(issuerDeps, c.req.param('id'), me(c).id, c.var.requestId, c.var.address);
    } catch (err) {
      if (err instanceof OAuthError && err.code === 'not_found') return notFound(c);
      throw err;
    }
    return c.redirect('/admin/trusted-issuers?done=deleted', 303);
  });

  return app;
}
