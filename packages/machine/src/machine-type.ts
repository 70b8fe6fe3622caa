/**
 * Machine types pinned to a version. An alias (`pc`, `q35`) names the newest type of the
 * binary that runs it: `pc` is `pc-i440fx-7.2` on QEMU 7.2 and `pc-i440fx-10.0` on 10.0, and a
 * VM (its saved state, its guest-visible hardware) only carries over between binaries under
 * the same versioned type. So the type is resolved once, at first launch, and recorded.
 *
 * Before anything is started the binary's list comes from `-machine help` (QEMU prints it and
 * exits; no VM, no QMP); after the launch `query-machines` on the running QEMU confirms the
 * pin (`alias`, `is-default`), so the recorded type is the one QEMU really runs.
 */
import { type QemuBinary, qemuBinaryEnv, runOnce } from './binary.js';
import { MachineTypeError, QemuBinaryError } from './errors.js';

/** One machine type of a binary. */
export interface MachineTypeInfo {
  readonly name: string;
  /** The versioned type this one is an alias of (`pc` → `pc-i440fx-7.2`). */
  readonly aliasOf?: string;
  readonly isDefault: boolean;
}

/** Parses `qemu-system-* -machine help`. */
export function parseMachineHelp(text: string): MachineTypeInfo[] {
  const out: MachineTypeInfo[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\S+)\s+(.*)$/.exec(line);
    if (m === null || line.startsWith('Supported machines')) continue;
    const [, name = '', rest = ''] = m;
    const alias = /\(alias of (\S+)\)/.exec(rest)?.[1];
    out.push({
      name,
      ...(alias !== undefined ? { aliasOf: alias } : {}),
      isDefault: /\(default\)/.test(rest),
    });
  }
  return out;
}

const lists = new Map<string, Promise<MachineTypeInfo[]>>();

/**
 * The machine types of `binary` (`-machine help`), cached per binary path, version and
 * fingerprint (`key`). Throws `QemuBinaryError` (`not-qemu`) when it prints no list.
 */
export function machineTypes(
  binary: QemuBinary,
  env: NodeJS.ProcessEnv,
  key: string,
  timeoutMs = 10_000,
): Promise<MachineTypeInfo[]> {
  const cacheKey = `${binary.path}\0${key}`;
  let list = lists.get(cacheKey);
  if (list === undefined) {
    list = (async () => {
      const run = await runOnce(
        binary.path,
        ['-machine', 'help'],
        qemuBinaryEnv(binary, env),
        timeoutMs,
      );
      const types = run.code === 0 ? parseMachineHelp(run.output) : [];
      if (types.length === 0)
        throw new QemuBinaryError('not-qemu', binary.path, {
          detail: `\`-machine help\` ${run.code === 0 ? 'listed no machine types' : `exited with ${String(run.code)}`}: ${JSON.stringify(run.output.trim().slice(0, 200))}`,
          ...(run.error ? { cause: run.error } : {}),
        });
      return types;
    })();
    lists.set(cacheKey, list);
    list.catch(() => lists.delete(cacheKey));
  }
  return list;
}

/**
 * The versioned type `type` stands for on a binary with `types`: the alias target, or the
 * type itself. Throws `MachineTypeError` when the binary has no such type.
 */
export function resolveMachineType(
  type: string,
  types: readonly MachineTypeInfo[],
  binary: { readonly path: string; readonly version: string },
  pinned: boolean,
): string {
  const found = types.find((t) => t.name === type);
  if (found === undefined)
    throw new MachineTypeError({
      machineType: type,
      binary: binary.path,
      binaryVersion: binary.version,
      known: types.map((t) => t.name),
      pinned,
    });
  return found.aliasOf ?? found.name;
}

/** `query-machines` entries as far as pinning needs them. */
export interface QueriedMachine {
  readonly name: string;
  readonly alias?: string;
  readonly 'is-default'?: boolean;
}

/** The versioned type `type` stands for in a `query-machines` reply (undefined: not listed). */
export function pinFromQueryMachines(
  type: string,
  machines: readonly QueriedMachine[],
): string | undefined {
  return (
    machines.find((m) => m.alias === type)?.name ?? machines.find((m) => m.name === type)?.name
  );
}
