import { z } from 'zod';
import type { CryptoBox } from '../../broker/tokens/crypto-box.js';

/**
 * The multi-round-trip `requestState` of 2026-07-28 (MRTR §Server Requirements 4): sealed with the
 * master key (AES-GCM, so any process of the deployment can open it), bound by its AAD to the tool
 * and the caller, and short-lived. A tampered, foreign or expired state fails to open, and the SDK
 * answers -32602 without running the tool.
 */
const StateSchema = z.object({ delegationId: z.string().max(100), exp: z.number().int() });
export type RequestState = z.infer<typeof StateSchema>;

const TTL = 900;

/** The AAD: the state only opens for the same agent and token subject. */
export function stateBinding(agentId: string, subject: string): string {
  return `errand-mcp-request-state\0${agentId}\0${subject}`;
}

export function sealRequestState(box: CryptoBox, binding: string, delegationId: string, now: number): string {
  return box.seal(Buffer.from(JSON.stringify({ delegationId, exp: now + TTL })), binding);
}

/** Opens a state or throws (the SDK turns the throw into its fixed -32602 answer). */
export function openRequestState(box: CryptoBox, binding: string, sealed: string, now: number): RequestState {
  const state = StateSchema.parse(JSON.parse(box.open(sealed, binding).toString('utf8')));
  if (state.exp <= now) throw new Error('expired');
  return state;
}
