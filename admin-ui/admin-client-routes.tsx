import { AUTH_METHOD } from '@errand/protocol';
import { type Context, Hono } from 'hono';
import { OAuthError } from '../broker/core/errors.js';
import type { Engine } from '../broker/engine.js';
import type { AppEnv } from '../broker/http/types.js';
import { CreateClientSchema, createClient, setClientStatus, UpdateClientSchema } from '../broker/services/admin.js';
import { ClientListQuerySchema, listClients } from '../broker/services/admission.js';
import {
  deleteClient,
  ReplaceClientKeysSchema,
  replaceClientKeys,
  updateClient,
} from '../broker/services/client-admin.js';
import { adminActor, type FormBody, field, fields, firstIssue, lines, parseJwks, readForm, words } from './forms.js';
import { ClientsPage } from './pages/admin-agents.js';
import { ClientDetailPage, ClientFormPage, type ClientFormValues, EMPTY_CLIENT_FORM } from './pages/admin-client.js';
import { ConfirmPage } from './pages/confirm.js';
import { MessagePage } from './pages/message.js';

const NOTICES: Record<string, string> = {
  created: 'Created.',
  saved: 'Saved.',
  'keys-replaced': 'Keys replaced: assertions signed with the old keys are refused from now on.',
  enabled: 'Enabled.',
  disabled: 'Disabled: its tasks have ended and its tokens are revoked.',
  deleted: 'Deleted: its tasks have ended, its delegations and tokens are revoked.',
  admitted: 'Admitted: it may now get tokens for every resource.',
};

/**
 * The console's client pages (mounted under the administrators-only `/admin/*`): create an agent or
 * a resource server, edit it, replace its keys, disable, enable or delete it. Each form calls the
 * same service as the admin API (services/admin.ts, services/client-admin.ts).
 */
export function adminClientRoutes(deps: Engine) {
  const app = new Hono<AppEnv>();
  const csrf = (c: Context<AppEnv>) => c.get('csrfToken') ?? '';
  const me = (c: Context<AppEnv>) => c.get('user')!;
  const pathOf = (id: string) => `/admin/clients/${encodeURIComponent(id)}`;

  const notFound = (c: Context<AppEnv>) =>
    c.html(<MessagePage title="Not found" message="There is no such client." user={me(c)} csrf={csrf(c)} />, 404);

  const formPage = async (c: Context<AppEnv>, values: ClientFormValues, error?: string) =>
    c.html(
      <ClientFormPage
        user={me(c)}
        csrf={csrf(c)}
        users={await deps.users.list()}
        values={values}
        {...(error ? { error } : {})}
      />,
      error ? 400 : 200,
    );

  const detailPage = async (c: Context<AppEnv>, id: string, error?: string) => {
    const client = await deps.clients.get(id);
    if (!client) return notFound(c);
    const notice = NOTICES[c.req.query('done') ?? ''];
    return c.html(
      <ClientDetailPage
        user={me(c)}
        csrf={csrf(c)}
        client={client}
        users={await deps.users.list()}
        {...(notice ? { notice } : {})}
        {...(error ? { error } : {})}
      />,
      error ? 400 : 200,
    );
  };

  /** Runs a change; a refusal the administrator can fix is shown on the client's page. */
  const change = async (c: Context<AppEnv>, id: string, run: () => Promise<unknown>, done: string) => {
    try {
      await run();
    } catch (err) {
      if (err instanceof OAuthError && err.code === 'not_found') return notFound(c);
      if (err instanceof OAuthError && err.status < 500) return detailPage(c, id, err.message);
      throw err;
    }
    return c.redirect(`${pathOf(id)}?done=${done}`, 303);
  };

  app.get('/admin/clients', async (c) => {
    const notice = NOTICES[c.req.query('done') ?? ''];
    return c.html(
      <ClientsPage
        user={me(c)}
        csrf={csrf(c)}
        // ?quarantined=true|false, as in the admin API; anything else lists every client.
        clients={await listClients(deps, ClientListQuerySchema.safeParse(c.req.query()).data ?? {})}
        {...(notice ? { notice } : {})}
      />,
    );
  });
  app.get('/admin/clients/new', (c) =>
    formPage(c, {
      ...EMPTY_CLIENT_FORM,
      kind: formKind(c.req.query('kind')),
    }),
  );
  app.post('/admin/clients/new', async (c) => {
    const body = await readForm(c);
    const values = formValues(body);
    const jwks = parseJwks(values.jwks);
    if (jwks.error) return formPage(c, values, jwks.error);
    const parsed = CreateClientSchema.safeParse({
      kind: values.kind,
      name: values.name.trim(),
      ...(values.owner_id ? { owner_id: values.owner_id } : {}),
      token_endpoint_auth_method: values.auth_method,
      ...(jwks.value ? { jwks: jwks.value } : {}),
      ...(values.jwks_uri.trim() ? { jwks_uri: values.jwks_uri.trim() } : {}),
      ...(values.scope.trim() ? { scope: words(values.scope) } : {}),
      ...(values.grant_types.length ? { grant_types: values.grant_types } : {}),
      resources: lines(values.resources),
    });
    if (!parsed.success) return formPage(c, values, firstIssue(parsed.error));
    try {
      const created = await createClient(deps, parsed.data, me(c).id, c.var.requestId, c.var.address);
      return c.redirect(`${pathOf(created.client_id)}?done=created`, 303);
    } catch (err) {
      if (err instanceof OAuthError && err.status < 500) return formPage(c, values, err.message);
      throw err;
    }
  });

  app.get('/admin/clients/:id', (c) => detailPage(c, c.req.param('id')));
  app.post('/admin/clients/:id', async (c) => {
    const id = c.req.param('id');
    const body = await readForm(c);
    const scope = words(field(body, 'scope'));
    const grantTypes = fields(body, 'grant_types');
    const parsed = UpdateClientSchema.safeParse({
      name: field(body, 'name').trim(),
      owner_id: field(body, 'owner_id') || null,
      scope: scope.length ? scope : null,
      ...(grantTypes.length ? { grant_types: grantTypes } : {}),
      resources: lines(field(body, 'resources')),
    });
    if (!parsed.success) return detailPage(c, id, firstIssue(parsed.error));
    const { status: _status, ...patch } = parsed.data;
    return change(c, id, () => updateClient(deps, id, patch, adminActor(c)), 'saved');
  });

  app.post('/admin/clients/:id/keys', async (c) => {
    const id = c.req.param('id');
    const body = await readForm(c);
    const jwks = parseJwks(field(body, 'jwks'));
    if (jwks.error) return detailPage(c, id, jwks.error);
    const uri = field(body, 'jwks_uri').trim();
    const parsed = ReplaceClientKeysSchema.safeParse({
      ...(jwks.value ? { jwks: jwks.value } : {}),
      ...(uri ? { jwks_uri: uri } : {}),
    });
    if (!parsed.success) return detailPage(c, id, firstIssue(parsed.error));
    return change(c, id, () => replaceClientKeys(deps, id, parsed.data, adminActor(c)), 'keys-replaced');
  });

  app.post('/admin/clients/:id/enable', async (c) => {
    const id = c.req.param('id');
    await readForm(c);
    return change(
      c,
      id,
      () => setClientStatus(deps, id, 'active', me(c).id, c.var.requestId, c.var.address),
      'enabled',
    );
  });

  // Two-step actions: GET shows what will happen (ConfirmPage), POST does it.
  app.get('/admin/clients/:id/disable', async (c) => {
    const client = await deps.clients.get(c.req.param('id'));
    if (!client) return notFound(c);
    return c.html(
      <ConfirmPage
        user={me(c)}
        csrf={csrf(c)}
        title={`Disable ${client.name}?`}
        consequence={
          <p>
            Every task it acts in ends, with their sub-tasks, and every token it holds stops working. It cannot get new
            tokens until it is enabled again.
          </p>
        }
        action={`${pathOf(client.id)}/disable`}
        confirmLabel={`Disable ${client.name}`}
        cancelHref={pathOf(client.id)}
      />,
    );
  });
  app.post('/admin/clients/:id/disable', async (c) => {
    const id = c.req.param('id');
    await readForm(c);
    return change(
      c,
      id,
      () => setClientStatus(deps, id, 'disabled', me(c).id, c.var.requestId, c.var.address),
      'disabled',
    );
  });

  app.get('/admin/clients/:id/delete', async (c) => {
    const client = await deps.clients.get(c.req.param('id'));
    if (!client) return notFound(c);
    return c.html(
      <ConfirmPage
        user={me(c)}
        csrf={csrf(c)}
        title={`Delete ${client.name}?`}
        consequence={
          <>
            <p>
              Every task it acts in ends, with their sub-tasks; every delegation people gave it is revoked; every token
              it holds stops working; then <strong>{client.name}</strong> (<code>{client.id}</code>) is removed.
            </p>
            <p>This cannot be undone: to use it again, register it anew. The audit log keeps its history.</p>
            {client.source === 'admin' ? null : (
              <p>It registered itself, so it can register again; to keep it out, disable it instead.</p>
            )}
          </>
        }
        action={`${pathOf(client.id)}/delete`}
        confirmLabel={`Delete ${client.name}`}
        cancelHref={pathOf(client.id)}
      />,
    );
  });
  app.post('/admin/clients/:id/delete', async (c) => {
    const id = c.req.param('id');
    await readForm(c);
    const client = await deps.clients.get(id);
    if (!client) return notFound(c);
    try {
      await deleteClient(deps, id, adminActor(c));
    } catch (err) {
      if (err instanceof OAuthError && err.status < 500) return detailPage(c, id, err.message);
      throw err;
    }
    const list = client.kind === 'agent' ? '/admin/agents' : '/admin/clients';
    return c.redirect(`${list}?done=deleted`, 303);
  });

  return app;
}

/** The kinds an administrator creates on the form (MCP clients register themselves). */
function formKind(kind: string | undefined): 'agent' | 'resource_server' | 'admin_service' {
  return kind === 'resource_server' || kind === 'admin_service' ? kind : 'agent';
}

function formValues(body: FormBody): ClientFormValues {
  const kind = field(body, 'kind');
  const auth = field(body, 'auth_method');
  return {
    kind: formKind(kind),
    name: field(body, 'name').slice(0, 300),
    owner_id: field(body, 'owner_id'),
    auth_method: auth === AUTH_METHOD.workloadFederation ? auth : AUTH_METHOD.privateKeyJwt,
    jwks: field(body, 'jwks').slice(0, 100_000),
    jwks_uri: field(body, 'jwks_uri').slice(0, 4096),
    scope: field(body, 'scope').slice(0, 10_000),
    grant_types: fields(body, 'grant_types'),
    resources: field(body, 'resources').slice(0, 100_000),
  };
}
