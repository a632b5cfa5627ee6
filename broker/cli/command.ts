import type { ParseArgsConfig } from 'node:util';
import type { Config } from '../config.js';
import type { Engine } from '../engine.js';

/** What every errand-admin command is (README "Admin CLI"); the list is in commands.ts. */

type Options = NonNullable<ParseArgsConfig['options']>;

/** What a command is handed: its parsed options, the streams, and the engine (built on first use). */
export interface CommandContext {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
  stdin: NodeJS.ReadableStream;
  /** The broker's services and stores over the configured database and master key. */
  engine(): Promise<Engine>;
  /** The configuration (validated by broker/config.ts). */
  config(): Config;
  /** The administrator the change is recorded under: `--as`, else the first administrator. */
  actingAdmin(): Promise<{ id: string; username: string }>;
  requestId: string;
  now(): number;
}

/** A command's result: the JSON value (`--json`) and the lines a person reads. */
export interface Output {
  json: unknown;
  text: string;
  /** The text is the output in either mode (JSON lines already). */
  raw?: boolean;
  /** A result that is a failure all the same (a failing policy test): printed, then this exit code. */
  exitCode?: number;
}

export interface Command {
  name: string;
  summary: string;
  usage: string;
  /** Longer help: what it does and what it refuses. */
  help: string;
  options: Options;
  positionals: string[];
  /** Opens the installation (database and master key) through the broker's engine. */
  usesEngine: boolean | ((positionals: string[]) => boolean);
  run(ctx: CommandContext): Promise<Output>;
}
