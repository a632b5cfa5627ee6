import { type Context, Hono } from 'hono';
import { OAuthError } from '../broker/core/errors.js';
import type { Engine } from '../broker/engine.js';
import type { AppEnv } from '../broker/http/types.js';
import { isBuiltInResource } from '../broker/services/built-in-resources.js';
import {
  CreateResourceSchema,
  createResource,
  deleteResource,
  UpdateResourceSchema,
  updateResource,
} from '../broker/services/resources.js';
import { allValues, firstIssue, firstValue, readForm } from './forms.js';
import { ResourceEditPage, ResourcesPage, scopeLines } from './pages/admin-resources.js';
import { ConfirmPage } from './pages/confirm.js';
import { MessagePage } from './pages/message.js';

const NOTICES: Record<string, string> = {
  created: 'Resource added.',
  updated: 'Resource saved.',
  deleted: 'Resource deleted; tokens still live for it were revoked.',
};

/** The Resources pages (`/admin/resources`); mounted behind the administrators' guard. */
export function resourcePageRoutes(deps: Engine) {
  const app = new Hono<AppEnv>();
  const csrf = (c: Context<AppEnv>) => c.get('csrfToken') ?? '';
  const me = (c: Context<AppEnv>) => c.get('user')!;
  const actor = (c: Context<AppEnv>) => ({ adminId: me(c).id, requestId: c.var.requestId, address: c.var.address });
  const resourceDeps = { ...deps, issuer: deps.config.issuer };
  const builtIn = (url: string) => isBuiltInResource(url, deps.config.issuer);

  const listPage = async (
    c: Context<AppEnv>,
    extra: { error?: string; form?: { url: string; name: string; scopes: string; public?: boolean } } = {},
    status: 200 | 400 | 404 | 409 = 200,
  ) => {
    const notice = NOTICES[c.req.query('done') ?? ''];
    return c.html(
      <ResourcesPage
        user={me(c)}
        csrf={csrf(c)}
        resources={await deps.clients.listResources()}
        builtIn={builtIn}
        {...(notice ? { notice } : {})}
        {...extra}
      />,
      status,
    );
  };
  const refused = (err: unknown): OAuthError | null => (err instanceof OAuthError && err.status < 500 ? err : null);
  const statusOf = (e: OAuthError) => (e.status === 404 ? 404 : e.status === 409 ? 409 : 400);
  const notFound = (c: Context<AppEnv>) =>
    c.html(<MessagePage title="Not found" message="There is no such resource." user={me(c)} csrf={csrf(c)} />, 404);

  app.get('/admin/resources', (c) => listPage(c));
  app.post('/admin/resources', async (c) => {
    const body = await readForm(c);
    const form = {
      url: (firstValue(body.url) ?? '').trim(),
      name: firstValue(body.name) ?? '',
      scopes: firstValue(body.scopes) ?? '',
      public: firstValue(body.public) === 'on',
    };
    const parsed = CreateResourceSchema.safeParse({
      url: form.url,
      name: form.name,
      scopes: scopeLines(form.scopes),
      public: form.public,
    });
    if (!parsed.success) return listPage(c, { error: firstIssue(parsed.error), form }, 400);
    try {
      await createResource(deps, parsed.data, actor(c));
    } catch (err) {
      const e = refused(err);
      if (!e) throw err;
      return listPage(c, { error: e.message, form }, statusOf(e));
    }
    return c.redirect('/admin/resources?done=created', 303);
  });

  app.get('/admin/resources/:id', async (c) => {
    const r = await deps.clients.getResourceById(c.req.param('id'));
    if (!r) return notFound(c);
    return c.html(<ResourceEditPage user={me(c)} csrf={csrf(c)} resource={r} />);
  });
  app.post('/admin/resources/:id', async (c) => {
    const body = await readForm(c);
    const r = await deps.clients.getResourceById(c.req.param('id'));
    if (!r) return notFound(c);
    const remove = new Set(allValues(body.remove));
    const kept = allValues(body.scope).filter((s) => r.scopes.includes(s) && !remove.has(s));
    const scopes = [
      ...kept.map((name) => ({ name, description: (firstValue(body[`description:${name}`]) ?? '').trim() })),
      ...scopeLines(firstValue(body.add) ?? ''),
    ];
    const parsed = UpdateResourceSchema.safeParse({
      name: firstValue(body.name),
      scopes,
      // Emptied description fields remove the description.
      scope_descriptions: Object.fromEntries(kept.map((s) => [s, (firstValue(body[`description:${s}`]) ?? '').trim()])),
      public: firstValue(body.public) === 'on',
    });
    const again = (error: string, status: 400 | 404 | 409) =>
      c.html(<ResourceEditPage user={me(c)} csrf={csrf(c)} resource={r} error={error} />, status);
    if (!parsed.success) return again(firstIssue(parsed.error), 400);
    try {
      await updateResource(resourceDeps, r.id, parsed.data, actor(c));
    } catch (err) {
      const e = refused(err);
      if (!e) throw err;
      return again(e.message, statusOf(e));
    }
    return c.redirect('/admin/resources?done=updated', 303);
  });

  // Deleting: GET asks for confirmation (ConfirmLink), POST deletes.
  app.get('/admin/resources/:id/delete', async (c) => {
    const r = await deps.clients.getResourceById(c.req.param('id'));
    if (!r) return notFound(c);
    return c.html(
      <ConfirmPage
        user={me(c)}
        csrf={csrf(c)}
        title={`Delete ${r.name}?`}
        consequence={
          <p>
            Agents can no longer get tokens for <code>{r.url}</code>, and tokens still live for it stop working. This
            cannot be undone. It is refused while a delegation someone approved still names it.
          </p>
        }
        action={`/admin/resources/${r.id}/delete`}
        confirmLabel={`Delete ${r.name}`}
        cancelHref="/admin/resources"
      />,
    );
  });
  app.post('/admin/resources/:id/delete', async (c) => {
    await readForm(c);
    try {
      await deleteResource(resourceDeps, c.req.param('id'), actor(c));
    } catch (err) {
      const e = refused(err);
      if (!e) throw err;
      return listPage(c, { error: e.message }, statusOf(e));
    }
    return c.redirect('/admin/resources?done=deleted', 303);
  });

  return app;
}
