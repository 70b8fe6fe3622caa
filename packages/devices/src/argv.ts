/**
 * The command line for a cold start.
 *
 * Syntax per option, as checked against qemu-system-x86_64 7.2: `-object`, `-blockdev`,
 * `-device` and `-netdev` take JSON, which carries QAPI's types exactly (no `on`/`off`
 * spelling, no escaping); `-machine`, `-accel`, `-m`, `-smp`, `-boot`, `-chardev` and `-mon`
 * do not (7.2 reads a JSON argument as keys and rejects it, or fails the type check), so
 * they are written as `key=value` with `,` doubled in values.
 *
 * Order (stable; the same configuration always gives the same argv):
 *  1. `-nodefaults`, `-machine`, `-accel` (each, in order), `-cpu`, `-m`, `-smp`, `-boot`,
 *     `-display none`, `-S`, `-incoming defer`
 *  2. the QMP monitor injected by the caller (`options.qmp`)
 *  3. `-object`, 4. `-chardev`, 5. `-netdev`, 6. `-blockdev`, 7. `-device` — each group in
 *     dependency order (children before parents, controllers before the devices on their
 *     buses), ties in declaration order
 *  8. `staticArgs`, untouched.
 */
import type { ChardevBackend, Commands } from '@qmpkit/qapi';
import { chardevCli } from './chardev-cli.js';
import { ModelError } from './errors.js';
import { formatKeyval, formatSize } from './keyval.js';
import {
  accelParts,
  type BlockNode,
  type ChardevConfig,
  type DeviceConfig,
  deviceProps,
  type NetdevConfig,
  type ObjectConfig,
  type Scalar,
  type VmConfig,
} from './model.js';
import { dependencyGraph, dependencyOrder } from './order.js';
import type { ItemKind } from './refs.js';
import { assertValid } from './validate.js';

/**
 * How the caller connects QMP: a chardev backend (the model writes `-chardev` with the slot's
 * id and `-mon chardev=…,mode=control`), or ready-made arguments passed through as given.
 */
export type QmpChannel =
  | { readonly backend: ChardevBackend }
  | { readonly args: readonly string[] };

export interface ArgvOptions {
  /** Required when the configuration has a QMP slot (`config.qmp`), refused otherwise. */
  readonly qmp?: QmpChannel;
}

/** `device_add` arguments (and the `-device` JSON) of a device: `{ driver, id, bus?, …props }`. */
export function deviceArguments(device: DeviceConfig): Commands['device_add']['args'] {
  const args: Commands['device_add']['args'] = { driver: device.driver, id: device.id };
  if (device.bus !== undefined) args.bus = device.bus;
  for (const [key, value] of Object.entries(deviceProps(device))) args[key] = value;
  return args;
}

/** Puts the identifying keys first so the JSON reads well; the rest keeps its order. */
function leading<T extends object>(value: T, keys: readonly string[]): T {
  const out: Record<string, unknown> = {};
  const source = value as Record<string, unknown>;
  for (const key of keys) if (source[key] !== undefined) out[key] = source[key];
  for (const [key, v] of Object.entries(source)) if (!(key in out) && v !== undefined) out[key] = v;
  return out as T;
}

export function blockdevJson(node: BlockNode): string {
  return JSON.stringify(leading(node, ['driver', 'node-name']));
}

export function objectJson(object: ObjectConfig): string {
  return JSON.stringify(leading(object, ['qom-type', 'id']));
}

export function netdevJson(netdev: NetdevConfig): string {
  return JSON.stringify(leading(netdev, ['type', 'id']));
}

export function deviceJson(device: DeviceConfig): string {
  return JSON.stringify(deviceArguments(device));
}

/** The `-chardev` argument; throws ModelError when 7.2's command line cannot express it. */
export function chardevArg(chardev: ChardevConfig): string {
  const result = chardevCli(chardev.id, chardev.backend);
  if (!result.ok) {
    throw new ModelError(
      'chardevArg',
      chardev.id,
      `chardev '${chardev.id}': ${result.unsupported.map((u) => `backend.${u.field} ${u.reason}`).join('; ')}`,
    );
  }
  return result.text;
}

/** `-chardev …,id=<id> -mon chardev=<id>,mode=control` for a QMP monitor on `backend`. */
export function qmpMonitorArgs(id: string, backend: ChardevBackend): string[] {
  return [
    '-chardev',
    chardevArg({ id, backend }),
    '-mon',
    formatKeyval([
      ['chardev', id],
      ['mode', 'control'],
    ]),
  ];
}

function pairs(record: Readonly<Record<string, Scalar>> | undefined): Array<[string, Scalar]> {
  return Object.entries(record ?? {});
}

/**
 * The argv (without the binary) that starts `config` in QEMU 7.2. Validates first and
 * throws `ConfigValidationError` listing every problem.
 */
export function toArgv(config: VmConfig, options: ArgvOptions = {}): string[] {
  assertValid(config);
  if (config.qmp && !options.qmp) {
    throw new ModelError(
      'toArgv',
      'qmp',
      `the configuration reserves a QMP monitor (chardev '${config.qmp.chardev}'); pass options.qmp`,
    );
  }
  if (!config.qmp && options.qmp) {
    throw new ModelError(
      'toArgv',
      'qmp',
      'options.qmp was given but the configuration has no QMP slot (config.qmp)',
    );
  }
  const argv: string[] = [];
  if (config.nodefaults !== false) argv.push('-nodefaults');
  const m = config.machine;
  argv.push(
    '-machine',
    formatKeyval([
      ['type', m.type],
      ['pflash0', m.pflash0],
      ['pflash1', m.pflash1],
      ['memory-backend', m['memory-backend']],
      ...pairs(m.props),
    ]),
  );
  for (const accel of config.accel ?? []) {
    const { type, props } = accelParts(accel);
    argv.push('-accel', formatKeyval(pairs(props), type));
  }
  if (config.cpu !== undefined) argv.push('-cpu', config.cpu);
  const mem = config.memory;
  argv.push(
    '-m',
    formatKeyval([
      ['size', formatSize(mem.size)],
      ['slots', mem.slots],
      ['maxmem', mem['max-size'] === undefined ? undefined : formatSize(mem['max-size'])],
    ]),
  );
  if (config.smp) {
    const s = config.smp;
    argv.push(
      '-smp',
      formatKeyval([
        ['cpus', s.cpus],
        ['maxcpus', s.maxcpus],
        ['sockets', s.sockets],
        ['dies', s.dies],
        ['clusters', s.clusters],
        ['cores', s.cores],
        ['threads', s.threads],
      ]),
    );
  }
  if (config.boot) {
    const b = config.boot;
    argv.push(
      '-boot',
      formatKeyval([
        ['order', b.order],
        ['once', b.once],
        ['menu', b.menu],
        ['strict', b.strict],
        ['reboot-timeout', b['reboot-timeout']],
      ]),
    );
  }
  argv.push('-display', config.display ?? 'none');
  if (config.paused) argv.push('-S');
  if (config.incoming) argv.push('-incoming', config.incoming);

  if (config.qmp && options.qmp) {
    if ('backend' in options.qmp)
      argv.push(...qmpMonitorArgs(config.qmp.chardev, options.qmp.backend));
    else argv.push(...options.qmp.args);
  }

  const { order } = dependencyOrder(dependencyGraph(config));
  const writers: Record<ItemKind, (value: unknown) => string[]> = {
    object: (v) => ['-object', objectJson(v as ObjectConfig)],
    chardev: (v) => ['-chardev', chardevArg(v as ChardevConfig)],
    netdev: (v) => ['-netdev', netdevJson(v as NetdevConfig)],
    node: (v) => ['-blockdev', blockdevJson(v as BlockNode)],
    device: (v) => ['-device', deviceJson(v as DeviceConfig)],
  };
  for (const kind of ['object', 'chardev', 'netdev', 'node', 'device'] as const) {
    for (const item of order) if (item.kind === kind) argv.push(...writers[kind](item.value));
  }
  argv.push(...(config.staticArgs ?? []));
  return argv;
}
