import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..', '..');

describe('npm run demo', () => {
  test('runs to the end with --auto-approve: tools used, sub-agent write refused, revocation pushed, next call refused', async () => {
    const child = spawn(
      process.execPath,
      ['--conditions=@errand/source', '--import', 'tsx', 'mcp-server/example/demo.ts', '--auto-approve'],
      {
        cwd: ROOT,
        env: { PATH: process.env.PATH },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(err).toBe('');
    expect(code).toBe(0);
    expect(out).toContain('the helper cannot write: 403');
    expect(out).toMatch(/revocation reached the notes server in \d+ ms/);
    expect(out).toContain('the next call with the task token is refused: 401');
    expect(out.trim().endsWith('Demo complete.')).toBe(true);
  }, 60_000);
});
