import { readFileSync } from 'node:fs';

/** A mistake in how the command was called (exit code 2); the message says how to call it. */
export class UsageError extends Error {}

/** Reads all of a stream as text. */
export async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * A password from standard input (`--password-stdin`) or a file (`--password-file`), exactly one of
 * them: never from the command line, where `ps` and the shell history would show it. One trailing
 * line break is dropped (what `echo` and editors add).
 */
export async function readPassword(
  values: { 'password-stdin'?: boolean; 'password-file'?: string },
  stdin: NodeJS.ReadableStream,
): Promise<string> {
  const fromStdin = values['password-stdin'] === true;
  const file = values['password-file'];
  if (fromStdin && file !== undefined) throw new UsageError('give --password-stdin or --password-file, not both');
  if (!fromStdin && file === undefined) {
    throw new UsageError(
      'the password is read from --password-stdin or --password-file <path>, never from the command line',
    );
  }
  let text: string;
  if (fromStdin) {
    text = await readAll(stdin);
  } else {
    try {
      text = readFileSync(file as string, 'utf8');
    } catch (err) {
      throw new UsageError(
        `--password-file: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
      );
    }
  }
  const password = text.replace(/\r?\n$/, '');
  if (password.length === 0)
    throw new UsageError(`the password ${fromStdin ? 'on standard input' : `in ${file}`} is empty`);
  return password;
}

/** A JSON document from a file, or from standard input when the path is `-`. */
export async function readJson(path: string, stdin: NodeJS.ReadableStream, option: string): Promise<unknown> {
  let text: string;
  try {
    text = path === '-' ? await readAll(stdin) : readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(
      `${option}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    );
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UsageError(
      `${option}: ${path === '-' ? 'standard input' : path} is not valid JSON (${(err as Error).message})`,
    );
  }
}
