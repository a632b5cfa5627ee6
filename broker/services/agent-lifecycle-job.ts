import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import { newId } from '../tokens/random.js';
import { enforceOwners, type LifecycleDeps } from './agent-lifecycle.js';
import { runCampaignSchedule } from './certification.js';

/**
 * The `agent_lifecycle` maintenance job (one process per period, broker/broker.ts): suspends agents
 * whose owner lapsed more than ERRAND_OWNER_GRACE_PERIOD ago, closes certification campaigns past
 * their deadline (suspending what was not attested) and opens the scheduled campaign when one is due.
 */
export async function maintainLifecycle(deps: LifecycleDeps, config: Pick<Config, 'lifecycle'>, log: Logger) {
  const requestId = newId('req').slice(4);
  const owners = await enforceOwners(deps, config.lifecycle.ownerGracePeriod, requestId);
  if (owners.suspended > 0) log.info('client.suspended', { reason: 'owner_lapsed', count: owners.suspended });
  const campaigns = await runCampaignSchedule(deps, config.lifecycle.certificationScheduleDays, requestId);
  if (campaigns.closed > 0 || campaigns.opened) log.info('campaign.maintained', { ...campaigns });
}
