import { randomUUID } from 'node:crypto';
import { type Message, Role, type SendMessageRequest, type Task } from '@a2a-js/sdk';
import { type Client, ClientFactory, ClientFactoryOptions, JsonRpcTransportFactory } from '@a2a-js/sdk/client';
import { isJsonRpcError } from '@a2a-js/sdk/errors';
import { expect } from 'vitest';
import type { TestBroker } from '../../broker/test/fixtures.js';

/** A fetch that presents a fixed bearer token, as an agent's A2A client would. */
export const bearerFetch = (bearer: string): typeof fetch =>
  ((input: Parameters<typeof fetch>[0], init?: RequestInit) => {
    const headers = new Headers(init?.headers);
    headers.set('authorization', `Bearer ${bearer}`);
    return fetch(input, { ...init, headers });
  }) as typeof fetch;

/**
 * A real `@a2a-js/sdk` client for Errand's agent, from its public card. `credentials` is a bearer
 * token, or a fetch that authorizes each request itself (a DPoP-bound token needs a proof per request).
 */
export async function a2aClient(tb: TestBroker, credentials: string | typeof fetch): Promise<Client> {
  const fetchImpl = typeof credentials === 'string' ? bearerFetch(credentials) : credentials;
  const factory = new ClientFactory(
    ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
      transports: [new JsonRpcTransportFactory({ fetchImpl, legacyCompat: { enabled: true } })],
    }),
  );
  return factory.createFromUrl(tb.url);
}

/** A message calling one of Errand's skills: a data part `{skill, arguments}`, optionally inside an A2A task. */
export function skillRequest(skill: string, args: Record<string, unknown>, taskId = ''): SendMessageRequest {
  return {
    tenant: '',
    message: {
      messageId: randomUUID(),
      contextId: '',
      taskId,
      role: Role.ROLE_USER,
      parts: [
        {
          content: { $case: 'data', value: { skill, arguments: args } },
          mediaType: 'application/json',
          filename: '',
          metadata: undefined,
        },
      ],
      metadata: undefined,
      extensions: [],
      referenceTaskIds: [],
    },
    configuration: undefined,
    metadata: undefined,
  };
}

export const isTask = (r: Message | Task): r is Task => 'status' in r;

/** The data part of a reply message. */
export function replyData(result: Message | Task): Record<string, unknown> {
  if (isTask(result)) throw new Error(`expected a message, got task ${result.id}`);
  const part = result.parts.find((p) => p.content?.$case === 'data');
  if (part?.content?.$case !== 'data') throw new Error('the reply has no data part');
  return part.content.value as Record<string, unknown>;
}

/** The task token a skill put on an A2A task as its `task-token` artifact. */
export function tokenArtifact(task: Task): { task_id: string; access_token: string; scope: string } {
  const part = task.artifacts.find((a) => a.artifactId === 'task-token')?.parts[0];
  if (part?.content?.$case !== 'data') throw new Error('the task has no token artifact');
  return part.content.value as { task_id: string; access_token: string; scope: string };
}

/** Asserts that a client call fails with the JSON-RPC error `code`. */
export async function expectRpcError(call: Promise<unknown>, code: number) {
  const err = await call.then(
    () => null,
    (e: unknown) => e,
  );
  expect(isJsonRpcError(err) ? err.envelopeCode : err).toBe(code);
}
