import { type Context, Hono } from 'hono';
import { OAuthError } from '../broker/core/errors.js';
import type { Engine } from '../broker/engine.js';
import type { AppEnv } from '../broker/http/types.js';
import { admitClient } from '../broker/services/admission.js';
import { listFindings } from '../broker/services/findings.js';
import { adminActor, field, readForm } from './forms.js';
import { FindingsPage } from './pages/admin-findings.js';
import { MessagePage } from './pages/message.js';

/**
 * The console's side of the intake of new registrations (README "Quarantine of new registrations and
 * findings"), mounted under the administrators-only `/admin/*`: the Findings page and the Admit
 * button. Both call the services the admin API calls (services/admission.ts, services/findings.ts).
 */
export function intakePageRoutes(deps: Pick<Engine, 'db' | 'clients' | 'audit' | 'clock'>) {
  const app = new Hono<AppEnv>();
  const csrf = (c: Context<AppEnv>) => c.get('csrfToken') ?? '';
  const me = (c: Context<AppEnv>) => c.get('user')!;

  app.get('/admin/findings', async (c) => {
    const notice = c.req.query('done') === 'admitted' ? 'Admitted: it may now get tokens for every resource.' : null;
    return c.html(
      <FindingsPage user={me(c)} csrf={csrf(c)} findings={await listFindings(deps)} {...(notice ? { notice } : {})} />,
    );
  });

  app.post('/admin/clients/:id/admit', async (c) => {
    const id = c.req.param('id');
    const body = await readForm(c);
    try {
      await admitClient(deps, id, adminActor(c));
    } catch (err) {
      if (err instanceof OAuthError && err.status < 500) {
        const status = err.code === 'not_found' ? 404 : 409;
        return c.html(<MessagePage title="Not admitted" message={err.message} user={me(c)} csrf={csrf(c)} />, status);
      }
      throw err;
    }
    const back = field(body, 'next') === 'findings' ? '/admin/findings' : `/admin/clients/${encodeURIComponent(id)}`;
    return c.redirect(`${back}?done=admitted`, 303);
  });
  return app;
}
