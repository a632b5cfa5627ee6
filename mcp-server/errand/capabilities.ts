import { z } from 'zod';

/** The part of a 2025-era `initialize` request that says whether the client takes URL elicitations. */
const InitializeSchema = z.object({
  method: z.literal('initialize'),
  params: z.object({
    capabilities: z.looseObject({ elicitation: z.looseObject({ url: z.looseObject({}).optional() }).optional() }),
  }),
});

/**
 * What legacy (2025-era) clients declared at `initialize`, remembered per access token. Legacy
 * requests are served statelessly (a fresh server per request), so a later `tools/call` cannot see
 * the capabilities any more; without an entry (another process, a new token) the tools assume no
 * URL elicitation and return the approval link in the result instead (MCP Elicitation §Capabilities).
 */
export class LegacyCapabilities {
  private readonly entries = new Map<string, { url: boolean; until: number }>();

  constructor(private readonly maxEntries = 10_000) {}

  /** Records the capabilities if `message` is an `initialize` request. */
  observe(message: unknown, jti: string, until: number, now: number): void {
    const parsed = InitializeSchema.safeParse(message);
    if (!parsed.success) return;
    for (const [key, entry] of this.entries) if (entry.until <= now) this.entries.delete(key);
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.delete(jti);
    this.entries.set(jti, { url: parsed.data.params.capabilities.elicitation?.url !== undefined, until });
  }

  /** Whether the client holding this token declared URL-mode elicitation. */
  urlElicitation(jti: string, now: number): boolean {
    const entry = this.entries.get(jti);
    return entry !== undefined && entry.until > now && entry.url;
  }
}
