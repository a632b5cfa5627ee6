import { type Context, Hono } from 'hono';
import { OAuthError } from '../broker/core/errors.js';
import type { Engine } from '../broker/engine.js';
import type { AppEnv } from '../broker/http/types.js';
import {
  AgentAccessQuerySchema,
  type AgentAccessView,
  exploreAgentAccess,
  exploreResourceAccess,
  ResourceAccessQuerySchema,
  type ResourceAccessView,
} from '../broker/services/policy/explorer.js';
import {
  CheckPolicySchema,
  checkPolicies,
  PolicyStatusSchema,
  SavePolicySchema,
  savePolicyDraft,
  setPolicyStatus,
} from '../broker/services/policy/policy-admin.js';
import { PolicyTestsSchema } from '../broker/services/policy/policy-tests.js';
import {
  checkView,
  getPolicyVersion,
  listPolicyVersions,
  listShadowDecisions,
  PolicyVersionParamSchema,
  type PolicyVersionView,
} from '../broker/services/policy/policy-views.js';
import { CEDAR_SCHEMA } from '../broker/services/policy/schema.js';
import { SetUserGroupsSchema, setUserGroups } from '../broker/services/policy/user-groups.js';
import { adminActor, field, firstIssue, lines, readForm } from './forms.js';
import { AccessExplorerPage, type AccessFormValues } from './pages/admin-access.js';
import { UserGroupsPage } from './pages/admin-groups.js';
import {
  PolicyEditorPage,
  type PolicyEditorValues,
  PolicySchemaPage,
  PolicyVersionPage,
  PolicyVersionsPage,
  ShadowDecisionsPage,
} from './pages/admin-policies.js';
import { MessagePage } from './pages/message.js';

const NOTICES: Record<string, string> = {
  saved: 'Saved as a draft. Start its shadow to see what it would decide over live traffic, or publish it.',
  shadow:
    'In shadow: it decides every request beside the enforced version; differences are listed under Shadow decisions.',
  draft: 'Shadow stopped.',
  published: 'Published: every decision now asks this version.',
  groups: 'Groups saved.',
};

const refused = (err: unknown): OAuthError | null => (err instanceof OAuthError && err.status < 500 ? err : null);

/** The example a new installation's editor starts with: the default, and one test of it. */
const EXAMPLE_TESTS = [
  {
    name: 'an agent with a delegation may exchange',
    action: 'exchange',
    agent: { id: 'agent-1' },
    user: { id: 'user-1', groups: ['staff'] },
    resource: { url: 'https://notes.example/mcp' },
    expect: 'allow',
  },
];

/**
 * Organisation policies in the console (`/admin/policies/*`, `/admin/access`, a person's groups),
 * behind the administrators' guard: the same services as `/api/admin/policies`, `/api/admin/access/*`
 * and `PUT /api/admin/users/:id/groups`.
 */
export function policyPageRoutes(deps: Engine) {
  const app = new Hono<AppEnv>();
  const csrf = (c: Context<AppEnv>) => c.get('csrfToken') ?? '';
  const me = (c: Context<AppEnv>) => c.get('user')!;
  const notFound = (c: Context<AppEnv>, what: string) =>
    c.html(<MessagePage title="Not found" message={what} user={me(c)} csrf={csrf(c)} />, 404);
  const versionOf = (c: Context<AppEnv>) => PolicyVersionParamSchema.safeParse(c.req.param('version'));
  /** A version, or null when there is none by that number. */
  const findVersion = async (n: number): Promise<PolicyVersionView | null> => {
    try {
      return await getPolicyVersion(deps, n);
    } catch (err) {
      if (refused(err)?.code === 'not_found') return null;
      throw err;
    }
  };

  const listPage = async (c: Context<AppEnv>, error?: string, status: 200 | 400 | 404 | 409 = 200) => {
    const notice = NOTICES[c.req.query('done') ?? ''];
    const list = await listPolicyVersions(deps);
    return c.html(
      <PolicyVersionsPage
        user={me(c)}
        csrf={csrf(c)}
        versions={list.versions}
        shadow={list.shadow}
        {...(notice && !error ? { notice } : {})}
        {...(error ? { error } : {})}
      />,
      status,
    );
  };

  app.get('/admin/policies', (c) => listPage(c));

  // Static paths before `:version`.
  app.get('/admin/policies/schema', (c) =>
    c.html(<PolicySchemaPage user={me(c)} csrf={csrf(c)} schema={CEDAR_SCHEMA} />),
  );
  app.get('/admin/policies/shadow', async (c) => {
    const [shadow, clients, users] = await Promise.all([
      listShadowDecisions(deps, { limit: 200 }),
      deps.clients.list(),
      deps.users.list(),
    ]);
    const names = new Map<string, string>([
      ...clients.map((x) => [x.id, x.name] as [string, string]),
      ...users.map((u) => [u.id, u.username] as [string, string]),
    ]);
    return c.html(
      <ShadowDecisionsPage
        user={me(c)}
        csrf={csrf(c)}
        version={shadow.version}
        decisions={shadow.decisions}
        names={names}
      />,
    );
  });

  const editor = (
    c: Context<AppEnv>,
    values: PolicyEditorValues,
    from: number | null,
    extra: { check?: ReturnType<typeof checkView>; error?: string } = {},
    status: 200 | 400 = 200,
  ) => c.html(<PolicyEditorPage user={me(c)} csrf={csrf(c)} values={values} from={from} {...extra} />, status);

  app.get('/admin/policies/new', async (c) => {
    const list = await listPolicyVersions(deps);
    const wanted = PolicyVersionParamSchema.safeParse(c.req.query('from') ?? list.published);
    const start = await findVersion(wanted.success ? wanted.data : 0);
    if (!start) return notFound(c, 'There is no such policy version.');
    const tests = start.tests.length > 0 ? start.tests : start.version === 0 ? EXAMPLE_TESTS : [];
    return editor(c, { text: start.text, tests: JSON.stringify(tests, null, 2), comment: '' }, start.version);
  });

  app.post('/admin/policies/new', async (c) => {
    const body = await readForm(c);
    const values: PolicyEditorValues = {
      text: field(body, 'text').slice(0, 200_000),
      tests: field(body, 'tests').slice(0, 500_000),
      comment: field(body, 'comment').trim().slice(0, 500),
    };
    let tests: unknown = [];
    if (values.tests.trim()) {
      try {
        tests = JSON.parse(values.tests);
      } catch {
        return editor(c, values, null, { error: 'Tests: not valid JSON (a JSON array of tests).' }, 400);
      }
    }
    const testsParsed = PolicyTestsSchema.safeParse(tests);
    if (!testsParsed.success) {
      const issue = testsParsed.error.issues[0];
      return editor(c, values, null, { error: `Tests: ${issue?.path.join('.') || '(list)'}: ${issue?.message}` }, 400);
    }
    if (field(body, 'intent') !== 'save') {
      const input = CheckPolicySchema.safeParse({ text: values.text, tests });
      if (!input.success) return editor(c, values, null, { error: firstIssue(input.error) }, 400);
      return editor(c, values, null, { check: checkView(checkPolicies(deps, input.data)) });
    }
    const input = SavePolicySchema.safeParse({
      text: values.text,
      tests,
      ...(values.comment ? { comment: values.comment } : {}),
    });
    if (!input.success) return editor(c, values, null, { error: firstIssue(input.error) }, 400);
    try {
      const saved = await savePolicyDraft(deps, input.data, adminActor(c));
      return c.redirect(`/admin/policies?done=saved#v${saved.version}`, 303);
    } catch (err) {
      const e = refused(err);
      if (!e) throw err;
      // Show what Cedar found, per policy, above the text kept as typed.
      return editor(
        c,
        values,
        null,
        { check: checkView(checkPolicies(deps, { text: values.text, tests: [] })), error: e.message },
        400,
      );
    }
  });

  app.get('/admin/policies/:version', async (c) => {
    const v = versionOf(c);
    if (!v.success) return notFound(c, 'There is no such policy version.');
    const version = await findVersion(v.data);
    if (!version) return notFound(c, 'There is no such policy version.');
    const tests = PolicyTestsSchema.safeParse(version.tests);
    const check = checkView(checkPolicies(deps, { text: version.text, tests: tests.success ? tests.data : [] }));
    return c.html(<PolicyVersionPage user={me(c)} csrf={csrf(c)} version={version} check={check} />);
  });

  app.post('/admin/policies/:version/status', async (c) => {
    const body = await readForm(c);
    const v = versionOf(c);
    if (!v.success) return notFound(c, 'There is no such policy version.');
    const parsed = PolicyStatusSchema.safeParse({ status: field(body, 'status') });
    if (!parsed.success) return listPage(c, firstIssue(parsed.error), 400);
    try {
      await setPolicyStatus(deps, v.data, parsed.data.status, adminActor(c));
    } catch (err) {
      const e = refused(err);
      if (!e) throw err;
      return listPage(c, e.message, e.status === 404 ? 404 : e.status === 409 ? 409 : 400);
    }
    return c.redirect(`/admin/policies?done=${parsed.data.status}`, 303);
  });

  // The effective-access explorer: a GET form, so a question can be linked to.
  app.get('/admin/access', async (c) => {
    const q = c.req.query();
    const values: AccessFormValues = {
      agent_id: (q.agent_id ?? '').slice(0, 200),
      user: (q.user ?? '').slice(0, 200),
      resource: (q.resource ?? '').slice(0, 2048),
      version: (q.version ?? '').slice(0, 12),
    };
    const version = values.version ? { version: values.version } : {};
    let agentView: AgentAccessView | undefined;
    let resourceView: ResourceAccessView | undefined;
    let error: string | undefined;
    try {
      if (values.agent_id || values.user) {
        const parsed = AgentAccessQuerySchema.safeParse({ agent_id: values.agent_id, user: values.user, ...version });
        if (!parsed.success) error = firstIssue(parsed.error);
        else agentView = await exploreAgentAccess(deps, parsed.data);
      } else if (values.resource) {
        const parsed = ResourceAccessQuerySchema.safeParse({ resource: values.resource, ...version });
        if (!parsed.success) error = firstIssue(parsed.error);
        else resourceView = await exploreResourceAccess(deps, parsed.data);
      }
    } catch (err) {
      const e = refused(err);
      if (!e) throw err;
      error = e.message;
    }
    const [clients, resources, list] = await Promise.all([
      deps.clients.list(),
      deps.clients.listResources(),
      listPolicyVersions(deps),
    ]);
    return c.html(
      <AccessExplorerPage
        user={me(c)}
        csrf={csrf(c)}
        values={values}
        agents={clients.map((x) => ({ id: x.id, name: x.name }))}
        resources={resources.map((r) => ({ url: r.url, name: r.name }))}
        versions={list.versions.map((v) => v.version)}
        {...(agentView ? { agentView } : {})}
        {...(resourceView ? { resourceView } : {})}
        {...(error ? { error } : {})}
      />,
      error ? 400 : 200,
    );
  });

  // A person's groups for policies.
  const groupsPage = async (c: Context<AppEnv>, extra: { error?: string } = {}, status: 200 | 400 = 200) => {
    const target = await deps.users.get(c.req.param('id') ?? '');
    if (!target) return notFound(c, 'There is no such person.');
    const [local, upstream] = await Promise.all([
      deps.policyStore.groupsOf(target.id, 'local'),
      deps.policyStore.groupsOf(target.id, 'upstream'),
    ]);
    const notice = NOTICES[c.req.query('done') ?? ''];
    return c.html(
      <UserGroupsPage
        user={me(c)}
        csrf={csrf(c)}
        target={target}
        local={local}
        upstream={upstream}
        {...(notice && !extra.error ? { notice } : {})}
        {...extra}
      />,
      status,
    );
  };
  app.get('/admin/users/:id/groups', (c) => groupsPage(c));
  app.post('/admin/users/:id/groups', async (c) => {
    const body = await readForm(c);
    const parsed = SetUserGroupsSchema.safeParse({ groups: lines(field(body, 'groups')) });
    if (!parsed.success) return groupsPage(c, { error: firstIssue(parsed.error) }, 400);
    try {
      await setUserGroups(deps, c.req.param('id'), parsed.data, adminActor(c));
    } catch (err) {
      if (refused(err)?.code === 'not_found') return notFound(c, 'There is no such person.');
      throw err;
    }
    return c.redirect(`/admin/users/${encodeURIComponent(c.req.param('id'))}/groups?done=groups`, 303);
  });

  return app;
}
