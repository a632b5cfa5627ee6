import { Layout, Notice } from '../components/layout.js';

export interface ConsentView {
  requestId: string;
  clientName: string;
  clientId: string;
  /** Shown so the user can tell where the authorization goes (MCP best practices §Consent). */
  redirectHost: string;
  /** The metadata document host for URL-identified clients. */
  clientHost: string | null;
  localhostOnly: boolean;
  scopes: string[];
  resources: string[];
  /** When an agent asks for a delegation: what it asked for, which the user may narrow. */
  delegation?: {
    grants: Record<string, string[]>;
    maxDepth: number;
    expiresIn: number;
    maxTokenTtl: number;
    subAgents: string[] | null;
    tools: { location: string; actions: string[] }[];
  };
}

function duration(seconds: number): string {
  if (seconds % 86_400 === 0) return `${seconds / 86_400} day${seconds === 86_400 ? '' : 's'}`;
  if (seconds % 3600 === 0) return `${seconds / 3600} hour${seconds === 3600 ? '' : 's'}`;
  if (seconds % 60 === 0) return `${seconds / 60} minutes`;
  return `${seconds} seconds`;
}

/** Expiry choices no longer than what was asked. */
function expiryChoices(asked: number): number[] {
  return [...new Set([asked, 30 * 86_400, 7 * 86_400, 86_400, 8 * 3600, 3600, 900].filter((s) => s <= asked))].sort(
    (a, b) => b - a,
  );
}

function DelegationControls(props: { d: NonNullable<ConsentView['delegation']> }) {
  const { d } = props;
  return (
    <fieldset class="delegation">
      <legend>What the agent may do for you</legend>
      {Object.entries(d.grants).map(([resource, scopes]) => (
        <div class="resource">
          <p>
            At <code>{resource}</code>:
          </p>
          {scopes.map((scope) => (
            <label class="check">
              <input type="checkbox" name="grant" value={`${resource} ${scope}`} checked />
              <code>{scope}</code>
            </label>
          ))}
        </div>
      ))}
      {d.tools.length ? (
        <p>
          Only these tools:{' '}
          {d.tools.map((t) => (
            <span>
              {t.actions.join(', ')} at <code>{t.location}</code>{' '}
            </span>
          ))}
        </p>
      ) : null}
      <label for="expires_in">For how long</label>
      <select id="expires_in" name="expires_in">
        {expiryChoices(d.expiresIn).map((s) => (
          <option value={String(s)} selected={s === d.expiresIn}>
            {duration(s)}
          </option>
        ))}
      </select>
      <label for="max_depth">How many levels of sub-agents it may hand work to</label>
      <select id="max_depth" name="max_depth">
        {Array.from({ length: d.maxDepth + 1 }, (_, i) => i).map((n) => (
          <option value={String(n)} selected={n === d.maxDepth}>
            {n === 0 ? 'none' : String(n)}
          </option>
        ))}
      </select>
      <p class="muted">
        Each task token lives at most {duration(d.maxTokenTtl)}.{' '}
        {d.subAgents
          ? `Sub-agents allowed: ${d.subAgents.join(', ')}.`
          : 'Any sub-agent your policy allows may act below it.'}
      </p>
    </fieldset>
  );
}

export function ConsentPage(props: { view: ConsentView; user: { username: string }; csrf: string }) {
  const v = props.view;
  return (
    <Layout title="Authorize access" user={props.user} csrf={props.csrf}>
      <div class="card">
        <h1>
          Allow <span>{v.clientName}</span> to act for you?
        </h1>
        <dl>
          <dt>Client</dt>
          <dd>
            <code>{v.clientId}</code>
          </dd>
          {v.clientHost ? (
            <>
              <dt>Published by</dt>
              <dd>{v.clientHost}</dd>
            </>
          ) : null}
          <dt>Redirects to</dt>
          <dd>{v.redirectHost}</dd>
          <dt>Resources</dt>
          <dd>
            {v.resources.map((r) => (
              <div>
                <code>{r}</code>
              </div>
            ))}
          </dd>
        </dl>
        {v.localhostOnly ? (
          <Notice kind="info">
            This client returns to a program on your own computer. Continue only if you started it.
          </Notice>
        ) : null}
        <form method="post" action="/authorize/consent">
          <input type="hidden" name="_csrf" value={props.csrf} />
          <input type="hidden" name="request" value={v.requestId} />
          {v.delegation ? (
            <DelegationControls d={v.delegation} />
          ) : (
            <>
              <h2>It asks for</h2>
              <ul class="scopes">
                {v.scopes.length ? (
                  v.scopes.map((s) => (
                    <li>
                      <code>{s}</code>
                    </li>
                  ))
                ) : (
                  <li>no scopes</li>
                )}
              </ul>
            </>
          )}
          <div class="actions">
            <button type="submit" name="decision" value="approve">
              Allow
            </button>
            <button type="submit" name="decision" value="deny" class="secondary">
              Deny
            </button>
          </div>
        </form>
      </div>
    </Layout>
  );
}
