import { afterEach, describe, expect, it } from 'vitest';
import { TaskStore } from '../../db/stores/task-store.js';
import { twoDbHandles } from './fixtures.js';

/**
 * Status list indexes are handed out from blocks each process reserves (db/stores/task-store.ts):
 * two tokens must never share an index, whichever process or node issued them, and every index
 * handed out lies inside what the counter says is allocated (the status lists' extent).
 */
const cleanup: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

const twoHandles = () => twoDbHandles(cleanup);

describe('status list indexes', () => {
  it('are unique across two handles allocating at once, and all within the allocated extent', async () => {
    const [a, b] = await twoHandles();
    const stores = [new TaskStore(a), new TaskStore(b)] as const;
    const handed: number[] = [];
    // Waves of concurrent write transactions on both handles, as two busy nodes would run them:
    // the first indexes come from the counter itself, later ones from reserved blocks.
    for (let wave = 0; wave < 12; wave++) {
      await Promise.all(
        [a, b].flatMap((db, i) =>
          Array.from({ length: 40 }, () =>
            db.write(async (tx) => {
              handed.push(await stores[i]!.nextStatusIndex(tx));
            }),
          ),
        ),
      );
    }
    expect(handed).toHaveLength(12 * 80);
    expect(new Set(handed).size).toBe(handed.length);
    expect(Math.min(...handed)).toBeGreaterThanOrEqual(0);
    const allocated = await stores[0].allocatedIndexes();
    expect(Math.max(...handed)).toBeLessThan(allocated);
    // Blocks, not a counter update per token: far fewer allocations than indexes handed out.
    expect(allocated).toBeLessThan(handed.length + 4 * 128);
  });

  it('after a transaction that failed once it held an index, later indexes stay unique and inside the extent', async () => {
    const [a] = await twoHandles();
    const store = new TaskStore(a);
    const failed = a.write(async (tx) => {
      await store.nextStatusIndex(tx);
      throw new Error('refused after allocating');
    });
    await expect(failed).rejects.toThrow('refused after allocating');
    const handed: number[] = [];
    for (let i = 0; i < 300; i++) {
      await a.write(async (tx) => {
        handed.push(await store.nextStatusIndex(tx));
      });
    }
    expect(new Set(handed).size).toBe(handed.length);
    expect(Math.max(...handed)).toBeLessThan(await store.allocatedIndexes());
  });
});
