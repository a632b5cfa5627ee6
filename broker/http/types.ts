import type { User } from '../../db/stores/user-store.js';
import type { Client } from '../core/client.js';
import type { Logger } from '../log.js';

/** Hono environment shared by every route: request id, bound logger, and the signed-in user if any. */
export type AppEnv = {
  Variables: {
    requestId: string;
    /** The client's address (README "Behind a reverse proxy"), for audit events. */
    address: string;
    log: Logger;
    user: User | null;
    csrfToken: string | null;
    sessionIdHash: string | null;
    /** The one place outside Errand a page's form may lead to (see http/csp.ts); unset on most pages. */
    formActionTarget: string | null;
    /** The admin service client whose `errand:admin` token authenticated an admin API request (README "Admin API"). */
    adminClient?: Client;
    /** The client that authenticated to this request, for the access log; unset otherwise. */
    clientId?: string;
    /** An expected answer repeated by design (a pending CIBA poll): its access-log line is at debug level. */
    routine?: boolean;
  };
};

/** RFC 6749 §5.1: token responses must not be cached. */
export const NO_STORE = { 'Cache-Control': 'no-store', Pragma: 'no-cache' } as const;
