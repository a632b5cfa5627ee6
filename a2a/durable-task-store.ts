import { type ListTasksRequest, type ListTasksResponse, Task, TaskState } from '@a2a-js/sdk';
import { A2AError, RequestMalformedError } from '@a2a-js/sdk/errors';
import type { ServerCallContext, TaskStore } from '@a2a-js/sdk/server';
import { z } from 'zod';
import type { Engine } from '../broker/engine.js';
import { unavailableError } from '../broker/http/on-error.js';

export type DurableStoreDeps = Pick<Engine, 'a2aTasks' | 'clock' | 'log'>;

const PageTokenSchema = z.object({ s: z.string().max(64), i: z.string().min(1).max(200) });

function owner(context: ServerCallContext): string {
  const user = context.user;
  // The route authenticates every call; an anonymous one reaching the store is a wiring bug.
  if (!user?.isAuthenticated || !user.userName) throw new Error('an A2A task was used without an authenticated caller');
  return user.userName;
}

/**
 * The SDK's task store over the database: A2A tasks outlive the process that created them and
 * are shared by every broker process on the database. Tasks are scoped to the caller
 * (`User.userName`: client and subject); another caller's task id finds nothing.
 */
export class DurableTaskStore implements TaskStore {
  constructor(private readonly deps: DurableStoreDeps) {}

  /**
   * The SDK answers any error with its message (JSON-RPC -32603): a storage failure is logged and
   * answered with a fixed message instead, so no driver or SQL text reaches the caller.
   */
  private async guard<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof A2AError) throw err;
      this.deps.log.error('a2a.store_failed', { err, operation: what });
      const unavailable = unavailableError(err);
      throw new Error(unavailable ? unavailable.message : 'an internal error occurred; it has been logged');
    }
  }

  load(taskId: string, context: ServerCallContext): Promise<Task | undefined> {
    return this.guard('load', async () => {
      const stored = await this.deps.a2aTasks.get(owner(context), taskId);
      return stored ? Task.fromJSON(stored.body) : undefined;
    });
  }

  save(task: Task, context: ServerCallContext): Promise<void> {
    return this.guard('save', () => this.put(task, context));
  }

  private async put(task: Task, context: ServerCallContext): Promise<void> {
    const saved = await this.deps.a2aTasks.put(
      {
        id: task.id,
        owner: owner(context),
        contextId: task.contextId,
        state: task.status?.state ?? TaskState.TASK_STATE_UNSPECIFIED,
        statusAt: task.status?.timestamp ?? '',
        body: Task.toJSON(task) as Record<string, unknown>,
      },
      this.deps.clock.now(),
    );
    // Task ids are the SDK's random UUIDs; one already held by another caller is never overwritten.
    if (!saved) throw new RequestMalformedError(`task id ${task.id} is already in use`);
  }

  list(params: ListTasksRequest, context: ServerCallContext): Promise<ListTasksResponse> {
    return this.guard('list', () => this.find(params, context));
  }

  private async find(params: ListTasksRequest, context: ServerCallContext): Promise<ListTasksResponse> {
    const pageSize = params.pageSize ?? 50;
    const found = await this.deps.a2aTasks.list(owner(context), {
      ...(params.contextId ? { contextId: params.contextId } : {}),
      ...(params.status ? { state: params.status } : {}),
      ...(params.statusTimestampAfter ? { statusAfter: new Date(params.statusTimestampAfter).toISOString() } : {}),
      ...(params.pageToken ? { after: readPageToken(params.pageToken) } : {}),
      // One more than asked for tells whether there is a next page.
      limit: pageSize + 1,
    });
    const page = found.tasks.slice(0, pageSize);
    const last = page.at(-1);
    const tasks = page.map((t) => {
      const task = Task.fromJSON(t.body);
      return params.includeArtifacts ? task : { ...task, artifacts: [] };
    });
    return {
      tasks,
      nextPageToken:
        last && found.tasks.length > pageSize
          ? Buffer.from(JSON.stringify({ s: last.statusAt, i: last.id })).toString('base64url')
          : '',
      pageSize,
      totalSize: found.total,
    };
  }
}

function readPageToken(token: string): { statusAt: string; id: string } {
  try {
    const parsed = PageTokenSchema.parse(JSON.parse(Buffer.from(token, 'base64url').toString('utf8')));
    return { statusAt: parsed.s, id: parsed.i };
  } catch {
    throw new RequestMalformedError('pageToken is not one this agent issued');
  }
}
