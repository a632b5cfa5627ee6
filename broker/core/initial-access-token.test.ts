import { describe, expect, test } from 'vitest';
import { AGENT_GRANTS, type InitialAccessToken, initialAccessTokenState } from './initial-access-token.js';

const token = (over: Partial<InitialAccessToken> = {}): InitialAccessToken => ({
  id: 'iat_1',
  name: 'fleet',
  createdBy: 'usr_1',
  createdAt: 1000,
  expiresAt: 2000,
  maxUses: null,
  uses: 0,
  autoApprove: false,
  scopes: null,
  grantTypes: [...AGENT_GRANTS],
  revokedAt: null,
  ...over,
});

describe('initialAccessTokenState', () => {
  test('active until its expiry (exclusive), then expired', () => {
    expect(initialAccessTokenState(token(), 1999)).toBe('active');
    expect(initialAccessTokenState(token(), 2000)).toBe('expired');
  });
  test('used up at max_uses; no limit without one', () => {
    expect(initialAccessTokenState(token({ maxUses: 2, uses: 1 }), 1500)).toBe('active');
    expect(initialAccessTokenState(token({ maxUses: 2, uses: 2 }), 1500)).toBe('used_up');
    expect(initialAccessTokenState(token({ uses: 10_000 }), 1500)).toBe('active');
  });
  test('revoked wins over every other state', () => {
    expect(initialAccessTokenState(token({ revokedAt: 1200, maxUses: 1, uses: 1 }), 3000)).toBe('revoked');
  });
});
