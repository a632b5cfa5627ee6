import type { DelegationRequest } from '../../broker/core/delegation.js';
import { assuranceInWords, DelegationControls, type ResourceInfo } from '../components/delegation-controls.js';
import { Badge, Layout, Notice } from '../components/layout.js';

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
  delegation?: DelegationRequest;
  /** Names and scope descriptions of the resources asked for. */
  resourceInfo?: Record<string, ResourceInfo>;
  /** The username of the person who answers for the client, if any. */
  owner?: string | null;
  assurance?: string | null;
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
          {v.delegation ? (
            <>
              <dt>Owner</dt>
              <dd>
                {v.owner ? (
                  <>{v.owner}, who answers for what this agent does</>
                ) : (
                  <Badge kind="risk">no owner: nobody answers for this agent</Badge>
                )}
              </dd>
              <dt>Assurance</dt>
              <dd>{assuranceInWords(v.assurance ?? null)}</dd>
            </>
          ) : null}
          <dt>Redirects to</dt>
          <dd>{v.redirectHost}</dd>
          <dt>Resources</dt>
          <dd>
            {v.resources.map((r) => (
              <div>
                {v.resourceInfo?.[r] ? <strong>{v.resourceInfo[r].name}</strong> : null} <code>{r}</code>
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
            <DelegationControls asked={v.delegation} {...(v.resourceInfo ? { resources: v.resourceInfo } : {})} />
          ) : (
            <>
              <h2>It asks for</h2>
              <ul class="scopes">
                {v.scopes.length ? (
                  v.scopes.map((s) => {
                    const text = Object.values(v.resourceInfo ?? {}).find((r) => r.scopeDescriptions[s])
                      ?.scopeDescriptions[s];
                    return (
                      <li>
                        {text ? <>{text} </> : null}
                        <code>{s}</code>
                      </li>
                    );
                  })
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
