/**
 * Reading the configuration `qmpkit vm start` is given: a `qmpkit-devices` document (JSON,
 * or JSON with comments and trailing commas, like the example `qmpkit vm init` writes) whose
 * relative image file names are resolved against the configuration file's directory (so
 * the state file holds absolute paths and a later `vm start --dir` finds the same files),
 * and a check that the VM will not write into an image an external snapshot froze.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { type BlockNode, ConfigFormatError, fromDocument, type VmConfig } from '@qmpkit/devices';
import { SnapshotStore } from '@qmpkit/snapshots';
import jsonc from 'jsonc-parser';

/** Block drivers whose `filename` is a host path. */
const FILE_DRIVERS = new Set(['file', 'host_device', 'host_cdrom']);

/**
 * Parses a configuration's text: JSON with `//` and `/* *\/` comments and trailing commas
 * allowed (plain JSON is read unchanged). A syntax error is a `ConfigFormatError` naming the
 * line and column.
 */
export function parseVmConfig(text: string): VmConfig {
  const errors: jsonc.ParseError[] = [];
  const value: unknown = jsonc.parse(text, errors, {
    allowTrailingComma: true,
    disallowComments: false,
  });
  const first = errors[0];
  if (first !== undefined) {
    const before = text.slice(0, first.offset).split('\n');
    const where = `line ${before.length}, column ${(before.at(-1)?.length ?? 0) + 1}`;
    const message = `config: is not valid JSON (with comments): ${jsonc.printParseErrorCode(first.error)} at ${where}`;
    throw new ConfigFormatError([
      { code: 'format', subject: { kind: 'config', id: '' }, field: '', path: '$', message },
    ]);
  }
  return fromDocument(value);
}

export async function readVmConfig(file: string): Promise<VmConfig> {
  const config = parseVmConfig(await readFile(file, 'utf8'));
  const base = path.dirname(path.resolve(file));
  const blockdevs = config.blockdevs?.map((node): BlockNode => {
    const filename = (node as { filename?: unknown }).filename;
    if (!FILE_DRIVERS.has(node.driver) || typeof filename !== 'string') return node;
    if (path.isAbsolute(filename)) return node;
    return { ...node, filename: path.resolve(base, filename) } as BlockNode;
  });
  return blockdevs === undefined ? config : { ...config, blockdevs };
}

/**
 * The image files of `config` that are frozen layers of external snapshots in the store at
 * `storeDir` (a VM started on them would change what those snapshots load), with the
 * snapshots' names.
 */
export async function frozenImagesInUse(
  config: VmConfig,
  storeDir: string,
): Promise<{ file: string; snapshots: string[] }[]> {
  if (!existsSync(path.join(storeDir, 'manifest.json'))) return [];
  const store = await SnapshotStore.open(storeDir);
  const out: { file: string; snapshots: string[] }[] = [];
  for (const node of config.blockdevs ?? []) {
    const filename = (node as { filename?: unknown }).filename;
    if (typeof filename !== 'string') continue;
    const file = path.resolve(filename);
    const users = store
      .snapshots()
      .filter((s) => s.layers.some((l) => path.resolve(l) === file))
      .map((s) => s.name);
    if (users.length > 0) out.push({ file, snapshots: users });
  }
  return out;
}
