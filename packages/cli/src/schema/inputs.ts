/**
 * Schema inputs of `qmpkit schema diff`: a `query-qmp-schema` JSON file (a SchemaInfo list
 * or a whole QMP reply), a `schemas/qemu-X.Y` directory (`query-qmp-schema.json`, with
 * `names.json` and `manifest.json` when present), a QEMU version name (`7.2`, `qemu-7.2`:
 * the capture shipped with the CLI), a libvirt `.replies` recording, or a live address
 * (`unix:`, `tcp:`, `ws://`; a path that is a UNIX socket counts as live too).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
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
const VERSION_NAME = /^(?:qemu-)?(\d+\.\d+)$/;

/**
 * Where the captures are: `dist/schemas/` of the installed package (the build copies them
 * there), else the repository's `schemas/` when running from a clone's sources.
 */
function capturesRoot(): string | undefined {
  return [new URL('../schemas/', import.meta.url), new URL('../../../../schemas/', import.meta.url)]
    .map((url) => fileURLToPath(url))
    .find((dir) => existsSync(path.join(dir, 'qemu-7.2', 'query-qmp-schema.json')));
}

/** QEMU versions (`major.minor`) whose capture `schema diff` accepts by name, oldest first. */
export function knownSchemaVersions(): string[] {
  const root = capturesRoot();
  if (root === undefined) return [];
  return readdirSync(root)
    .filter((d) => /^qemu-\d+\.\d+$/.test(d))
    .filter((d) => existsSync(path.join(root, d, 'query-qmp-schema.json')))
    .map((d) => d.slice('qemu-'.length))
    .sort((a, b) => {
      const [am = 0, an = 0] = a.split('.').map(Number);
      const [bm = 0, bn = 0] = b.split('.').map(Number);
      return am - bm || an - bn;
    });
}

/** The capture directory of a version name (`7.2`, `qemu-7.2`), or `undefined`. */
function captureDirOf(input: string): string | undefined {
  const version = VERSION_NAME.exec(input)?.[1];
  const root = capturesRoot();
  if (version === undefined || root === undefined) return undefined;
  const dir = path.join(root, `qemu-${version}`);
  return existsSync(path.join(dir, 'query-qmp-schema.json')) ? dir : undefined;
}

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

/** A `schemas/qemu-X.Y` directory: the capture, with real names and version when present. */
function readDirectory(input: string, dir: string): RawSchemaInput {
  const text = readText(input, path.join(dir, 'query-qmp-schema.json'));
  return {
    input,
    kind: 'directory',
    qemuVersion: versionOfManifest(readJsonIfPresent(input, path.join(dir, 'manifest.json'))),
    text,
    names: readJsonIfPresent<NameMap>(input, path.join(dir, 'names.json')),
  };
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
      const captured = code === 'ENOENT' ? captureDirOf(input) : undefined;
      if (captured !== undefined) return readDirectory(input, captured);
      const versions = knownSchemaVersions();
      throw new SchemaInputError(
        input,
        code === 'ENOENT'
          ? `no such file or directory (expected a schema JSON file, a schemas/qemu-X.Y directory, a .replies file, an address${
              versions.length > 0 ? ` or a QEMU version: ${versions.join(', ')}` : ''
            })`
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
  if (stat.isDirectory()) return readDirectory(input, input);
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
