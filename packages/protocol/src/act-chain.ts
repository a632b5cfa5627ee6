/**
 * The RFC 8693 §4.1 actor chain. The outermost `act` is the current actor; each nested `act` is
 * the actor before it. Errand always derives it from its own records, never from a request.
 */
export interface ActClaim {
  sub: string;
  act?: ActClaim;
}

/** Builds the `act` claim from actor ids, current actor first. */
export function toActClaim(chain: readonly string[]): ActClaim | undefined {
  let claim: ActClaim | undefined;
  for (let i = chain.length - 1; i >= 0; i--) claim = claim ? { sub: chain[i]!, act: claim } : { sub: chain[i]! };
  return claim;
}

/** Reads actor ids (current first) back from an `act` claim; null when malformed or too deep. */
export function fromActClaim(claim: unknown, maxDepth = 16): string[] | null {
  const out: string[] = [];
  let node = claim;
  while (node !== undefined) {
    if (typeof node !== 'object' || node === null || typeof (node as ActClaim).sub !== 'string') return null;
    out.push((node as ActClaim).sub);
    if (out.length > maxDepth) return null;
    node = (node as ActClaim).act;
  }
  return out;
}
