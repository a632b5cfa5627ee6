import type { DelegationRequest } from '../../broker/core/delegation.js';
import { OAuthError } from '../../broker/core/errors.js';
import type { Approval } from '../../broker/services/delegations.js';

/** Durations as words for the select boxes. */
export function duration(seconds: number): string {
  if (seconds % 86_400 === 0) return `${seconds / 86_400} day${seconds === 86_400 ? '' : 's'}`;
  if (seconds % 3600 === 0) return `${seconds / 3600} hour${seconds === 3600 ? '' : 's'}`;
  if (seconds % 60 === 0) return `${seconds / 60} minutes`;
  return `${seconds} seconds`;
}

/** Choices no longer than what was asked (the asked value first). */
function choicesUpTo(asked: number, steps: number[]): number[] {
  return [...new Set([asked, ...steps.filter((s) => s <= asked)])].sort((a, b) => b - a);
}

/**
 * The controls that let a person narrow what an agent asked for: each scope per resource, each
 * named tool, how long, how deep the sub-agent chain, how long each token. Nothing can be widened.
 */
export function DelegationControls(props: { asked: DelegationRequest; idPrefix?: string }) {
  const d = props.asked;
  const id = (name: string) => `${props.idPrefix ?? ''}${name}`;
  return (
    <fieldset class="delegation">
      <legend>What the agent may do for you</legend>
      {Object.entries(d.grants).map(([resource, scopes], i) => {
        const tools = d.authorizationDetails?.find((t) => t.locations[0] === resource);
        return (
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
            {tools ? <ToolChoices location={resource} actions={tools.actions} hintId={id(`tools-${i}`)} /> : null}
          </div>
        );
      })}
      <label for={id('expires_in')}>For how long</label>
      <select id={id('expires_in')} name="expires_in">
        {choicesUpTo(d.expiresIn, [30 * 86_400, 7 * 86_400, 86_400, 8 * 3600, 3600, 900]).map((s) => (
          <option value={String(s)} selected={s === d.expiresIn}>
            {duration(s)}
          </option>
        ))}
      </select>
      <label for={id('max_depth')}>How many levels of sub-agents it may hand work to</label>
      <select id={id('max_depth')} name="max_depth">
        {Array.from({ length: d.maxDepth + 1 }, (_, i) => i).map((n) => (
          <option value={String(n)} selected={n === d.maxDepth}>
            {n === 0 ? 'none' : String(n)}
          </option>
        ))}
      </select>
      <label for={id('max_token_ttl')}>Longest life of each task token</label>
      <select id={id('max_token_ttl')} name="max_token_ttl">
        {choicesUpTo(d.maxTokenTtl, [3600, 900, 300, 60]).map((s) => (
          <option value={String(s)} selected={s === d.maxTokenTtl}>
            {duration(s)}
          </option>
        ))}
      </select>
      <p class="muted">
        {d.subAgents
          ? `Sub-agents allowed: ${d.subAgents.join(', ')}.`
          : 'Any sub-agent your policy allows may act below it.'}
      </p>
    </fieldset>
  );
}

/**
 * The tools asked for at one resource. A resource server reads a resource without a tool list as
 * "every tool", so an empty list cannot be granted (RFC 9396 mcp_tool); the hint says what to do.
 */
function ToolChoices(props: { location: string; actions: string[]; hintId: string }) {
  return (
    <fieldset class="tools" aria-describedby={props.hintId}>
      <legend>Only these tools</legend>
      {props.actions.map((action) => (
        <label class="check">
          <input type="checkbox" name="tool" value={`${props.location} ${action}`} checked />
          <code>{action}</code>
        </label>
      ))}
      <p class="muted" id={props.hintId}>
        The agent may call only the ticked tools here. Keep at least one ticked; to give it nothing at this resource,
        untick its scopes instead.
      </p>
    </fieldset>
  );
}

type FormBody = Record<string, string | File | (string | File)[]>;

function strings(v: FormBody[string] | undefined): string[] {
  return (Array.isArray(v) ? v : v === undefined ? [] : [v]).filter((x): x is string => typeof x === 'string');
}

function pairs(values: string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const value of values) {
    const space = value.lastIndexOf(' ');
    if (space <= 0) throw new OAuthError('invalid_request', 'the form is malformed');
    const key = value.slice(0, space);
    out[key] = [...(out[key] ?? []), value.slice(space + 1)];
  }
  return out;
}

/** Reads the narrowing from a submitted DelegationControls form (parsed with `{ all: true }`). */
export function approvalFromForm(body: FormBody, asked: DelegationRequest): Approval {
  const num = (v: FormBody[string] | undefined) => {
    const [s] = strings(v);
    return s !== undefined && /^\d{1,9}$/.test(s) ? Number(s) : undefined;
  };
  const expires = num(body.expires_in);
  const depth = num(body.max_depth);
  const ttl = num(body.max_token_ttl);
  const tools = pairs(strings(body.tool));
  return {
    scopes: pairs(strings(body.grant)),
    ...(asked.authorizationDetails
      ? {
          authorization_details: Object.entries(tools).map(([location, actions]) => ({
            type: 'mcp_tool' as const,
            locations: [location] as [string],
            actions,
          })),
        }
      : {}),
    ...(expires !== undefined ? { expires_in: expires } : {}),
    ...(depth !== undefined ? { max_depth: depth } : {}),
    ...(ttl !== undefined ? { max_token_ttl: ttl } : {}),
  };
}
