import { ASSURANCE_LEVELS } from '@errand/protocol';
import type { AssuranceLevel } from './client.js';

/** Whether a value names an assurance level (NHI-AAL1..3). */
export function isAssuranceLevel(value: unknown): value is AssuranceLevel {
  return typeof value === 'string' && (ASSURANCE_LEVELS as readonly string[]).includes(value);
}

/** Position of a level, lowest first; no level at all ranks below NHI-AAL1. */
function rank(level: AssuranceLevel | null | undefined): number {
  return level ? ASSURANCE_LEVELS.indexOf(level) : -1;
}

/** Whether `actual` reaches `required` (no requirement is always met; no level meets none). */
export function meetsAssurance(
  actual: AssuranceLevel | null | undefined,
  required: AssuranceLevel | null | undefined,
): boolean {
  return !required || rank(actual) >= rank(required);
}

/** A level as a number for policies (README "Organisation policies"): 0 for none, 1–3 for NHI-AAL1..3. */
export function assuranceNumber(level: AssuranceLevel | null | undefined): number {
  return rank(level) + 1;
}
