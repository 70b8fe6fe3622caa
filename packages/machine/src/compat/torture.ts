/**
 * Save/load torture ("VMState continuous testing"): boot a VM and, N times, stop it, save its
 * device state (a migration into a file), start a fresh QEMU with `-incoming defer`, load the
 * state, compare, continue. With a second binary the restores alternate: odd cycles load on
 * `restoreQemu`, even cycles on `qemu`, so every cycle crosses versions, both ways.
 *
 * After each load (the guest still stopped) the `query-*` view of every device must equal the
 * one before the save: run state, PCI functions with their config (`query-pci`), block devices
 * (`query-block`), chardevs (`query-chardev`), CPUs (`query-cpus-fast`); the disk images hash
 * the same. With `counter`, the guest must also continue exactly: the RAM counter equals the
 * value at the stop, and the first counter the guest prints after `cont` is the last one
 * before the stop plus one (the serial text of both QEMUs read as one stream). The first
 * cycle and device where anything differs ends the run and is reported.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { VmConfig } from '@qmpkit/devices';
import { createStreamSink } from '@qmpkit/transport/fd';
import type { QemuBinary } from '../binary.js';
import { isMigrationError } from '../errors.js';
import { launch, type Machine } from '../machine.js';
import { migrateIncoming, migrateOutgoing, setUpMigration } from '../migration.js';
import { agrees } from './machine-type-diff.js';

export interface TortureCounter {
  /** The chardev the guest prints its counter on (a console of the machine). */
  readonly chardev: string;
  /** One counter line; group 1 is the value in hex (default `C=XXXXXXXX\r\n`, the test guest's). */
  readonly pattern?: RegExp;
  /** Guest-physical address of the dword counter in RAM (default 0x500, the test guest's). */
  readonly ramAddress?: number;
}

export interface TortureOptions {
  readonly config: VmConfig;
  readonly cycles: number;
  /** The binary the VM boots on (default `qemu-system-x86_64`). */
  readonly qemu?: QemuBinary | string;
  /** Restore odd cycles on this binary (even ones on `qemu`). Default: always `qemu`. */
  readonly restoreQemu?: QemuBinary | string;
  /** The configuration restores start with (default `config`): a deliberate mismatch is found. */
  readonly restoreConfig?: VmConfig;
  /** Check that the guest continues exactly (see the module comment). */
  readonly counter?: TortureCounter;
  /** Hash the configuration's image files before the save and after the load (default true). */
  readonly hashDisks?: boolean;
  /** Where run directories and state files go (default `os.tmpdir()`); removed after. */
  readonly dirParent?: string;
  /** Milliseconds per save, load or wait for the guest (default 60 000). */
  readonly timeoutMs?: number;
  /** Called after each cycle that matched. */
  readonly onCycle?: (cycle: TortureCycle) => void;
}

export interface TortureCycle {
  readonly cycle: number;
  /** `version` of the QEMU that saved and of the one that loaded. */
  readonly from: string;
  readonly to: string;
  /** Milliseconds for stop → save → restart → load → continue (and the checks). */
  readonly ms: number;
  /** The guest's counter at the stop (with `counter`). */
  readonly counter?: number;
}

/** What differed first. */
export interface TortureDivergence {
  readonly cycle: number;
  /** The device (id, PCI address, chardev label, block device), `guest`, or `run state`. */
  readonly device: string;
  readonly what: 'load' | 'run-state' | 'pci' | 'block' | 'chardev' | 'cpu' | 'disk' | 'guest';
  readonly before?: unknown;
  readonly after?: unknown;
  readonly message: string;
}

export interface TortureResult {
  readonly ok: boolean;
  /** Cycles that completed and matched. */
  readonly cycles: readonly TortureCycle[];
  readonly divergence?: TortureDivergence;
  /** The accelerator the VM ran on. */
  readonly accel: string;
}

const COUNTER = /C=([0-9A-F]{8})\r\n/;

type DeviceView = Map<string, { what: TortureDivergence['what']; value: unknown }>;

/** `query-*` state of every device, keyed by a name a user recognises. */
async function deviceView(m: Machine): Promise<DeviceView> {
  const view: DeviceView = new Map();
  const status = await m.qmp.execute('query-status');
  view.set('run state', {
    what: 'run-state',
    value: { status: status.status, running: status.running },
  });
  for (const bus of await m.qmp.execute('query-pci'))
    for (const d of bus.devices) {
      const addr = `${bus.bus.toString(16).padStart(2, '0')}:${d.slot.toString(16).padStart(2, '0')}.${d.function}`;
      const name =
        d.qdev_id === '' ? `pci ${addr} (${d.class_info.desc ?? d.class_info.class})` : d.qdev_id;
      view.set(name, { what: 'pci', value: { addr, ...d } });
    }
  for (const b of await m.qmp.execute('query-block')) {
    const { inserted, ...rest } = b;
    // Allocation on the host is not device state.
    const image =
      inserted === undefined ? undefined : { ...inserted.image, 'actual-size': undefined };
    view.set(b.qdev ?? b.device, {
      what: 'block',
      value: { ...rest, inserted: inserted === undefined ? undefined : { ...inserted, image } },
    });
  }
  for (const c of await m.qmp.execute('query-chardev'))
    view.set(`chardev ${c.label}`, { what: 'chardev', value: c });
  for (const c of await m.qmp.execute('query-cpus-fast')) {
    // The host thread is not the guest's CPU.
    const { 'thread-id': _thread, ...cpu } = c as typeof c & { 'thread-id'?: number };
    view.set(c['qom-path'], { what: 'cpu', value: cpu });
  }
  return view;
}

/**
 * The first device whose view differs. Across versions, members only one QEMU reports (a
 * newer `query-block` has more) are not state; on one version everything must be equal.
 */
function firstDifference(
  before: DeviceView,
  after: DeviceView,
  crossVersion: boolean,
): Omit<TortureDivergence, 'cycle'> | undefined {
  const same = (name: string, x: unknown, y: unknown) =>
    crossVersion
      ? agrees(name, x, y) && agrees(name, y, x)
      : JSON.stringify(x) === JSON.stringify(y);
  for (const [name, b] of before) {
    const a = after.get(name);
    if (a === undefined)
      return {
        device: name,
        what: b.what,
        before: b.value,
        message: `${name} is gone after the load`,
      };
    if (!same(name, b.value, a.value))
      return {
        device: name,
        what: b.what,
        before: b.value,
        after: a.value,
        message: `${name}: ${b.what} state differs after the load`,
      };
  }
  for (const [name, a] of after)
    if (!before.has(name))
      return {
        device: name,
        what: a.what,
        after: a.value,
        message: `${name} appeared after the load`,
      };
  return undefined;
}

function imageFiles(config: VmConfig): string[] {
  return (config.blockdevs ?? []).flatMap((n) => {
    const f = (n as { filename?: unknown }).filename;
    return n.driver === 'file' && typeof f === 'string' ? [f] : [];
  });
}

function hashFile(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(file)
      .on('error', reject)
      .on('data', (c) => h.update(c))
      .on('end', () => resolve(h.digest('hex')));
  });
}

async function ramCounter(m: Machine, address: number): Promise<number> {
  const out = await m.qmp.hmp(`xp /1wx 0x${address.toString(16)}`);
  return Number.parseInt(/0x([0-9a-f]+)\s*$/i.exec(out.trim())?.[1] ?? 'NaN', 16);
}

function counters(text: string, pattern: RegExp): number[] {
  const global = new RegExp(
    pattern.source,
    pattern.flags.includes('g') ? pattern.flags : `${pattern.flags}g`,
  );
  return [...text.matchAll(global)].map((m) => Number.parseInt(m[1] ?? 'NaN', 16));
}

/** Text after the last complete line: a line the stop cut, finished by the next QEMU. */
function tailAfterLastLine(text: string): string {
  const i = text.lastIndexOf('\n');
  return i < 0 ? text : text.slice(i + 1);
}

/**
 * Runs the torture (see the module comment). Resolves with the cycles that matched and, when
 * one did not, the first divergence; rejects only when the VM cannot be started at all.
 * Every QEMU it started has ended when it settles.
 */
export async function tortureVm(options: TortureOptions): Promise<TortureResult> {
  const timeout = options.timeoutMs ?? 60_000;
  const qemuA = options.qemu ?? 'qemu-system-x86_64';
  const dir = await mkdtemp(path.join(options.dirParent ?? tmpdir(), 'qmpkit-torture-'));
  const consoles = options.counter === undefined ? [] : [options.counter.chardev];
  const common = {
    stateFile: false as const,
    runDirParent: dir,
    consoles,
    logger: { warn: () => undefined },
  };
  const pattern = options.counter?.pattern ?? COUNTER;
  const cycles: TortureCycle[] = [];
  let m = await launch(options.config, { ...common, qemu: qemuA });
  try {
    const accel = m.accel;
    let carried = '';
    let last: number | undefined;
    if (options.counter !== undefined) {
      const first = await m.console(options.counter.chardev).expect(pattern, { timeout });
      last = Number.parseInt(first.groups[0] ?? 'NaN', 16);
    }
    const result = (
      divergence: Omit<TortureDivergence, 'cycle'>,
      cycle: number,
    ): TortureResult => ({
      ok: false,
      cycles,
      divergence: { cycle, ...divergence },
      accel,
    });
    for (let cycle = 1; cycle <= options.cycles; cycle++) {
      const started = Date.now();
      const from = m.qemuVersion;
      await m.qmp.execute('stop');
      const ram =
        options.counter === undefined
          ? undefined
          : await ramCounter(m, options.counter.ramAddress ?? 0x500);
      if (options.counter !== undefined) {
        const text = carried + m.console(options.counter.chardev).read();
        const seen = counters(text, pattern);
        last = seen.at(-1) ?? last;
        carried = tailAfterLastLine(text);
      }
      const before = await deviceView(m);
      const disks = options.hashDisks === false ? [] : imageFiles(options.config);
      const hashes = await Promise.all(disks.map(hashFile));
      // Save: a migration into a file through a stream sink (7.2 has no `file:` URI).
      const file = path.join(dir, `cycle-${cycle}.state`);
      await setUpMigration(m, { parameters: { 'max-bandwidth': 1024 ** 4 } });
      const sink = await createStreamSink({ file, acceptTimeout: timeout, timeout });
      await migrateOutgoing(m, { uri: sink.uri, timeout });
      await sink.done;
      await m.stop();
      // Restart: a fresh QEMU, on the other binary for odd cycles when there is one.
      const target =
        options.restoreQemu !== undefined && cycle % 2 === 1 ? options.restoreQemu : qemuA;
      m = await launch(options.restoreConfig ?? options.config, {
        ...common,
        qemu: target,
        incoming: true,
        paused: true,
        inheritFiles: [{ path: file }],
      });
      const [inherited] = m.inheritedFiles;
      try {
        await migrateIncoming(m, { uri: inherited?.uri ?? '', timeout });
      } catch (error) {
        if (!isMigrationError(error)) throw error;
        const reason = error.stderr
          ?.split('\n')
          .map((l) => l.replace(/^qemu-system-[\w-]+:\s*/, '').trim())
          .filter((l) => l !== '' && !/failed to open module/.test(l));
        // The first thing QEMU could not place: a RAM block (a device's ROM), a section.
        const named = reason
          ?.map(
            (l) =>
              /ramblock "([^"]+)"/i.exec(l)?.[1] ??
              /section or instance '([^']+)'/.exec(l)?.[1] ??
              /of device '([^']+)'/.exec(l)?.[1],
          )
          .find((x) => x !== undefined);
        return result(
          {
            device: named ?? 'unknown',
            what: 'load',
            message: `QEMU ${m.qemuVersion.major}.${m.qemuVersion.minor} did not load the state: ${reason?.join('; ') ?? error.message}`,
          },
          cycle,
        );
      }
      await rm(file, { force: true });
      const after = await deviceView(m);
      const crossVersion = JSON.stringify(from) !== JSON.stringify(m.qemuVersion);
      const diff = firstDifference(before, after, crossVersion);
      if (diff !== undefined) return result(diff, cycle);
      const hashesAfter = await Promise.all(disks.map(hashFile));
      const changed = disks.findIndex((_, i) => hashes[i] !== hashesAfter[i]);
      if (changed >= 0)
        return result(
          {
            device: disks[changed] ?? '',
            what: 'disk',
            message: `the image ${disks[changed]} changed across the save and load`,
          },
          cycle,
        );
      if (options.counter !== undefined && ram !== undefined) {
        const loaded = await ramCounter(m, options.counter.ramAddress ?? 0x500);
        if (loaded !== ram)
          return result(
            {
              device: 'guest',
              what: 'guest',
              before: ram,
              after: loaded,
              message: `RAM counter ${ram} before the save, ${loaded} after the load`,
            },
            cycle,
          );
      }
      await m.qmp.execute('cont');
      let counter: number | undefined;
      if (options.counter !== undefined) {
        const next = await m.console(options.counter.chardev).expect(pattern, { timeout });
        const text = carried + next.before + next.match;
        const first = counters(text, pattern)[0];
        carried = '';
        if (last !== undefined && first !== last + 1)
          return result(
            {
              device: 'guest',
              what: 'guest',
              before: last,
              after: first,
              message: `the guest printed ${String(last)} before the stop and ${String(first)} first after the load`,
            },
            cycle,
          );
        last = counters(text, pattern).at(-1) ?? first;
        counter = ram;
      }
      const done: TortureCycle = {
        cycle,
        from: `${from.major}.${from.minor}.${from.micro}`,
        to: `${m.qemuVersion.major}.${m.qemuVersion.minor}.${m.qemuVersion.micro}`,
        ms: Date.now() - started,
        ...(counter === undefined ? {} : { counter }),
      };
      cycles.push(done);
      options.onCycle?.(done);
    }
    return { ok: true, cycles, accel };
  } finally {
    if (m.status === 'running') await m.kill();
    await rm(dir, { recursive: true, force: true });
  }
}
