import type { DelegationRequest } from '../../broker/core/delegation.js';
import { OAuthError } from '../../broker/core/errors.js';
import type { Approval } from '../../broker/services/delegations.js';

/** Durations as words for the select boxes. */
export function duration(seconds: number): string {
  if (seconds % 86_400 === 0) return `${seconds / 86_400} day${seconds === 86_400 ? '' : 's'}`;
  if (seconds % 3600 === 0) return `${seconds / 3600} hour${seconds === 3600 ? '' : 's'}`;
  if (seconds % 60 === 0) return `${seconds / 60} minute${seconds === 60 ? '' : 's'}`;
  return `${seconds} seconds`;
}

/** Choices no longer than what was asked (the asked value first). */
function choicesUpTo(asked: number, steps: number[]): number[] {
  return [...new Set([asked, ...steps.filter((s) => s <= asked)])].sort((a, b) => b - a);
}

/** How a resource and its scopes are shown: its name and a description per scope. */
export interface ResourceInfo {
  name: string;
  scopeDescriptions: Record<string, string>;
}

/**
 * What the form preselects: never the most the agent asked for, but the least that lets it work,
 * which the person may raise up to the request. Every asked scope and tool stays ticked (unticking
 * is one click and the agent named them); the delegation lasts at most 8 hours (a working day),
 * each task token at most 15 minutes, and sub-agents go at most one level deep, none unless asked.
 */
export const APPROVAL_DEFAULTS = { expiresIn: 8 * 3600, maxTokenTtl: 900, maxDepth: 1 } as const;

export function defaultsFor(asked: DelegationRequest) {
  return {
    expiresIn: Math.min(asked.expiresIn, APPROVAL_DEFAULTS.expiresIn),
    maxTokenTtl: Math.min(asked.maxTokenTtl, APPROVAL_DEFAULTS.maxTokenTtl),
    maxDepth: Math.min(asked.maxDepth, APPROVAL_DEFAULTS.maxDepth),
  };
}

/** What an assurance level means, in words a person can weigh. */
const ASSURANCE_MEANING: Record<string, string> = {
  'NHI-AAL1': 'it proves who it is with a key or secret an administrator registered by hand',
  'NHI-AAL2': 'it proves who it is with a short-lived workload token from an identity provider Errand trusts',
  'NHI-AAL3': 'it proves who it is with a workload token backed by hardware attestation',
};

/** The agent's assurance level explained; `null` when it has not authenticated yet. */
export function assuranceInWords(level: string | null): string {
  if (!level) return 'not known yet: the agent has not authenticated';
  return `${level}: ${ASSURANCE_MEANING[level] ?? 'an assurance level Errand does not describe'}`;
}

function depthInWords(n: number): string {
  if (n === 0) return 'none (it does all the work itself)';
  return n === 1 ? '1 level' : `${n} levels`;
}

/**
 * The controls that let a person narrow what an agent asked for, explained in plain words: each
 * resource by its name and each scope by its description (the scope itself when it has none), each
 * named tool, how long, how deep the sub-agent chain, how long each token. Nothing can be widened,
 * and the safe defaults (APPROVAL_DEFAULTS) are preselected.
 */
export function DelegationControls(props: {
  asked: DelegationRequest;
  idPrefix?: string;
  resources?: Record<string, ResourceInfo>;
}) {
  const d = props.asked;
  const id = (name: string) => `${props.idPrefix ?? ''}${name}`;
  const preset = defaultsFor(d);
  return (
    <fieldset class="delegation">
      <legend>What the agent may do for you</legend>
      {Object.entries(d.grants).map(([resource, scopes], i) => {
        const tools = d.authorizationDetails?.find((t) => t.locations[0] === resource);
        const info = props.resources?.[resource];
        return (
          <div class="resource">
            <p>
              At <strong>{info?.name ?? resource}</strong> <code>{resource}</code>:
            </p>
            {scopes.map((scope) => {
              const text = info?.scopeDescriptions[scope];
              return (
                <label class="check">
                  <input type="checkbox" name="grant" value={`${resource} ${scope}`} checked />
                  {text ? (
                    <span>
                      {text} <code class="muted">{scope}</code>
                    </span>
                  ) : (
                    <code>{scope}</code>
                  )}
                </label>
              );
            })}
            {tools ? <ToolChoices location={resource} actions={tools.actions} hintId={id(`tools-${i}`)} /> : null}
          </div>
        );
      })}
      <label for={id('expires_in')}>For how long</label>
      <select id={id('expires_in')} name="expires_in" aria-describedby={id('expires_in-hint')}>
        {choicesUpTo(d.expiresIn, [30 * 86_400, 7 * 86_400, 86_400, 8 * 3600, 3600, 900]).map((s) => (
          <option value={String(s)} selected={s === preset.expiresIn}>
            {duration(s)}
            {s === d.expiresIn ? ' (as asked)' : ''}
          </option>
        ))}
      </select>
      <p class="muted" id={id('expires_in-hint')}>
        After this the agent can no longer start tasks for you; it asked for {duration(d.expiresIn)}.
      </p>
      <label for={id('max_depth')}>How many levels of sub-agents it may hand work to</label>
      <select id={id('max_depth')} name="max_depth" aria-describedby={id('max_depth-hint')}>
        {Array.from({ length: d.maxDepth + 1 }, (_, i) => i).map((n) => (
          <option value={String(n)} selected={n === preset.maxDepth}>
            {depthInWords(n)}
            {n === d.maxDepth && n > 0 ? ' (as asked)' : ''}
          </option>
        ))}
      </select>
      <p class="muted" id={id('max_depth-hint')}>
        A sub-agent is another agent this one passes part of a task to. With 1 level, those sub-agents cannot pass it on
        again; with 2, they can, once. A sub-agent never gets more than you grant here.
      </p>
      <label for={id('max_token_ttl')}>Longest life of each task token</label>
      <select id={id('max_token_ttl')} name="max_token_ttl" aria-describedby={id('max_token_ttl-hint')}>
        {choicesUpTo(d.maxTokenTtl, [3600, 900, 300, 60]).map((s) => (
          <option value={String(s)} selected={s === preset.maxTokenTtl}>
            {duration(s)}
            {s === d.maxTokenTtl ? ' (as asked)' : ''}
          </option>
        ))}
      </select>
      <p class="muted" id={id('max_token_ttl-hint')}>
        Each token the agent uses dies after this; a stolen one is useless soon after.
      </p>
      {d.minAssurance ? (
        <p class="muted">
          Every agent acting under this delegation must prove itself at least at {assuranceInWords(d.minAssurance)}.
        </p>
      ) : null}
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
