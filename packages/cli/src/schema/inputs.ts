/**
 * Schema inputs of `qmpkit schema diff`: a `query-qmp-schema` JSON file (a SchemaInfo list
 * or a whole QMP reply), a `schemas/qemu-X.Y` directory (`query-qmp-schema.json`, with
 * `names.json` and `manifest.json` when present), a libvirt `.replies` recording, or a live
 * address (`unix:`, `tcp:`, `ws://`; a path that is a UNIX socket counts as live too).
 */
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { NameMap, Schema } from '@qmpkit/schema';
import { connectCli } from '../connect.js';
import { isCliConnectError, SchemaInputError } from '../errors.js';
import type { CliIo } from '../io.js';

/** An input read but not yet turned into the IR. */
export interface RawSchemaInput {
  /** The input as given. */
  readonly input: string;
  /** What it was: `file`, `directory`, `replies`, `live`. */
  readonly kind: 'file' | 'directory' | 'replies' | 'live';
  readonly qemuVersion: string | undefined;
  /** The SchemaInfo list as JSON text. */
  readonly text: string;
  /** Real names for masked types, when the input came with them. */
  readonly names: NameMap | undefined;
}

export interface LoadedSchema {
  readonly input: string;
  readonly kind: RawSchemaInput['kind'];
  readonly qemuVersion: string | undefined;
  readonly schema: Schema;
  /** Whether real type names (names.json) were used. */
  readonly named: boolean;
}

const LIVE = /^(unix:|tcp:|wss?:\/\/)/;

function readText(input: string, file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new SchemaInputError(
      input,
      `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
    );
  }
}

function readJsonIfPresent<T>(input: string, file: string): T | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  try {
    return JSON.parse(text) as T;
  } catch (error) {
    throw new SchemaInputError(
      input,
      `${file} is not valid JSON (${error instanceof Error ? error.message : String(error)})`,
    );
  }
}

function versionOfManifest(manifest: unknown): string | undefined {
  const qemu = (manifest as { qemu?: { version?: unknown } } | undefined)?.qemu;
  return typeof qemu?.version === 'string' ? qemu.version : undefined;
}

export async function readSchemaInput(
  input: string,
  io: CliIo,
  options: { timeout?: number } = {},
): Promise<RawSchemaInput> {
  let stat: ReturnType<typeof statSync> | undefined;
  if (!LIVE.test(input)) {
    try {
      stat = statSync(input);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new SchemaInputError(
        input,
        code === 'ENOENT'
          ? 'no such file or directory (expected a schema JSON file, a schemas/qemu-X.Y directory, a .replies file or an address)'
          : `cannot read (${code ?? String(error)})`,
      );
    }
  }
  if (stat === undefined || stat.isSocket()) {
    const address = stat ? `unix:${input}` : input;
    let client: Awaited<ReturnType<typeof connectCli>>;
    try {
      client = await connectCli(address, io, options);
    } catch (error) {
      if (isCliConnectError(error)) throw error;
      throw new SchemaInputError(input, error instanceof Error ? error.message : String(error));
    }
    try {
      const list = await client.executeUnchecked('query-qmp-schema');
      const { major, minor, micro } = client.greeting.version.qemu;
      return {
        input,
        kind: 'live',
        qemuVersion: `${major}.${minor}.${micro}`,
        text: JSON.stringify(list),
        names: undefined,
      };
    } finally {
      await client.close();
    }
  }
  if (stat.isDirectory()) {
    const file = path.join(input, 'query-qmp-schema.json');
    const text = readText(input, file);
    return {
      input,
      kind: 'directory',
      qemuVersion: versionOfManifest(readJsonIfPresent(input, path.join(input, 'manifest.json'))),
      text,
      names: readJsonIfPresent<NameMap>(input, path.join(input, 'names.json')),
    };
  }
  const text = readText(input, input);
  if (input.endsWith('.replies')) {
    const { schemaFromReplies, isSchemaError } = await import('@qmpkit/schema');
    try {
      const recorded = schemaFromReplies(input, text);
      const { major, minor, micro } = recorded.version;
      return {
        input,
        kind: 'replies',
        qemuVersion: `${major}.${minor}.${micro}`,
        text: JSON.stringify(recorded.schema),
        names: undefined,
      };
    } catch (error) {
      if (isSchemaError(error)) throw new SchemaInputError(input, error.reason, { cause: error });
      throw error;
    }
  }
  return { input, kind: 'file', qemuVersion: undefined, text, names: undefined };
}

/**
 * Reads both sides into the IR. Real names (names.json) are used only when both sides have
 * them: masked types otherwise get names derived from their owner on both sides alike, so a
 * side with real names and a side without do not differ in every type reference.
 */
export async function loadSchemaPair(
  a: RawSchemaInput,
  b: RawSchemaInput,
): Promise<[LoadedSchema, LoadedSchema]> {
  const { readIntrospection, isSchemaError } = await import('@qmpkit/schema');
  const named = a.names !== undefined && b.names !== undefined;
  const load = (raw: RawSchemaInput): LoadedSchema => {
    try {
      const schema = readIntrospection({
        file: raw.input,
        text: raw.text,
        ...(raw.qemuVersion !== undefined ? { qemuVersion: raw.qemuVersion } : {}),
        ...(named && raw.names ? { names: raw.names } : {}),
      });
      return { input: raw.input, kind: raw.kind, qemuVersion: raw.qemuVersion, schema, named };
    } catch (error) {
      if (isSchemaError(error))
        throw new SchemaInputError(raw.input, error.reason, { cause: error });
      throw error;
    }
  };
  return [load(a), load(b)];
}
