import type { AuthInfo } from '@modelcontextprotocol/server';
import type { Caller } from '../../broker/services/resource-access.js';

const CALLER = 'errand.caller';
const REQUEST_ID = 'errand.requestId';

/** The SDK's view of a verified caller; the Errand caller rides along in `extra`. */
export function toAuthInfo(
  caller: Caller,
  token: string,
  opts: { resource: string; resourceMetadataUrl: string; requestId: string },
): AuthInfo {
  return {
    token,
    clientId: caller.client.id,
    scopes: caller.scopes,
    expiresAt: caller.expiresAt,
    resource: new URL(opts.resource),
    resourceMetadataUrl: opts.resourceMetadataUrl,
    extra: { [CALLER]: caller, [REQUEST_ID]: opts.requestId },
  };
}

/** The Errand caller and request id put into an AuthInfo by `toAuthInfo`. */
export function callerOf(authInfo: AuthInfo | undefined): { caller: Caller; requestId: string } | null {
  const caller = authInfo?.extra?.[CALLER] as Caller | undefined;
  const requestId = authInfo?.extra?.[REQUEST_ID];
  return caller && typeof requestId === 'string' ? { caller, requestId } : null;
}
