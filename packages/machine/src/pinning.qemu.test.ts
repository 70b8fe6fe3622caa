/**
 * Machine types pinned and the binary recorded, with real QEMU: 7.2 (the system's) and, when
 * `pnpm qemu:fetch 10.0` has filled the repository's `.cache` (CI does), 10.0. Bad input —
 * not QEMU, a root without its module dir, a pinned type the binary lacks, a recorded binary
 * that is gone — is a typed error with nothing started and the run directory unchanged.
 */
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import type { VmConfig } from '@qmpkit/devices';
import {
  QEMU_10,
  QEMU_SYSTEM,
  qemuSkipReason,
  qemuSuite,
  REPO_CACHE_DIR,
} from '@qmpkit/testguest/test-support';
import { describe, expect, it } from 'vitest';
import { type QemuBinary, qemuCacheDir, resolveQemuBinary } from './binary.js';
import { isMachineTypeError, isQemuBinaryError } from './errors.js';
import { launch, Machine } from './machine.js';
import { resolveBinary } from './proc.js';
import { guestConfig } from './qemu.test-support.js';

const cacheDir = REPO_CACHE_DIR;
const have10 = QEMU_10.missing === undefined;
const systemSkip = qemuSkipReason(QEMU_SYSTEM);
const skip10 = systemSkip ?? qemuSkipReason(QEMU_10);

// Skip rules, and after each test every QEMU of the suite's dir is ended (also on failure).
const suite = qemuSuite({ kill: 'each', prefix: 'qmpkit-pinning-' });
const tmp = { dir: suite.dir };
const started = { add: <T extends Machine>(m: T): T => suite.adopt(m) };
const quiet = { warn: () => {} };

let counter = 0;
/** The test guest on the `pc` alias, with a fresh run directory of its own. */
async function pcGuest(): Promise<{ config: VmConfig; runDir: string }> {
  counter += 1;
  const config = await guestConfig(tmp.dir, { name: `guest-${counter}` });
  return {
    config: { ...config, machine: { ...config.machine, type: 'pc' } },
    runDir: path.join(tmp.dir, `run-${counter}`),
  };
}

/** The QOM type QEMU runs (`pc-i440fx-7.2-machine` → `pc-i440fx-7.2`). */
async function runningType(m: Machine): Promise<string> {
  const type = await m.qmp.executeUnchecked('qom-get', { path: '/machine', property: 'type' });
  return String(type).replace(/-machine$/, '');
}

/** The `-machine` argument of a command line. */
function machineArg(argv: readonly string[]): string | undefined {
  const i = argv.indexOf('-machine');
  return i < 0 ? undefined : argv[i + 1];
}

/** Every file under `dir` with its size, mtime and content hash. */
function tree(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    const file = path.join(entry.parentPath, entry.name);
    const s = statSync(file);
    const hash = entry.isFile()
      ? createHash('sha256').update(readFileSync(file)).digest('hex')
      : entry.isDirectory()
        ? 'dir'
        : 'other';
    out.push(`${path.relative(dir, file)} ${s.size} ${s.mtimeMs} ${hash}`);
  }
  return out.sort();
}

function readDoc(file: string): {
  version: number;
  launch: {
    machineType?: string;
    binary?: { path: string; version: string; size: number; mtimeMs: number };
  };
} {
  return JSON.parse(readFileSync(file, 'utf8'));
}

describe('pinning on QEMU 7.2', () => {
  it('pins pc to the versioned type at first launch, records the binary, relaunches on the pin', async () => {
    const { config, runDir } = await pcGuest();
    const m = started.add(await launch(config, { runDir, logger: quiet }));
    const v = m.qemuVersion;
    const expected = `pc-i440fx-${v.major}.${v.minor}`;
    expect(await runningType(m)).toBe(expected);
    expect(m.machineType).toBe(expected);
    const doc = readDoc(path.join(runDir, 'state.json'));
    expect(doc.version).toBe(2);
    expect(doc.launch.machineType).toBe(expected);
    const system = await resolveBinary('qemu-system-x86_64');
    expect(doc.launch.binary?.path).toBe(system);
    expect(doc.launch.binary?.version).toBe(`${v.major}.${v.minor}.${v.micro}`);
    expect(doc.launch.binary?.size).toBe(statSync(system ?? '').size);
    await m.stop();

    const again = started.add(
      await Machine.relaunch(path.join(runDir, 'state.json'), { logger: quiet }),
    );
    expect(machineArg(m.argv)).toBe('type=pc');
    expect(machineArg(again.argv)).toBe(`type=${expected}`);
    expect(await runningType(again)).toBe(expected);
    await again.stop();
  });

  it('relaunches a version 1 state file (written before pinning) and pins it', async () => {
    const { runDir } = await pcGuest();
    mkdirSync(runDir, { mode: 0o700 });
    const doc = JSON.parse(
      readFileSync(path.join(import.meta.dirname, 'fixtures', 'state-v1.json'), 'utf8'),
    );
    doc.runtime.runDir = runDir;
    const file = path.join(runDir, 'state.json');
    writeFileSync(file, JSON.stringify(doc), { mode: 0o600 });
    const m = started.add(await Machine.relaunch(file, { logger: quiet }));
    const v = m.qemuVersion;
    const expected = `pc-i440fx-${v.major}.${v.minor}`;
    expect(await runningType(m)).toBe(expected);
    const now = readDoc(file);
    expect(now.version).toBe(2);
    expect(now.launch.machineType).toBe(expected);
    expect(now.launch.binary?.version).toBe(`${v.major}.${v.minor}.${v.micro}`);
    await m.stop();
  });

  it('refuses a binary that is not QEMU; nothing created', async () => {
    const parent = path.join(tmp.dir, 'not-qemu-parent');
    mkdirSync(parent, { mode: 0o700 });
    const fake = path.join(tmp.dir, 'not-qemu');
    writeFileSync(fake, `#!${process.execPath}\nconsole.log('hello from something else');\n`, {
      mode: 0o700,
    });
    const { config } = await pcGuest();
    const error = await launch(config, { qemu: fake, runDirParent: parent }).catch(
      (e: unknown) => e,
    );
    expect(isQemuBinaryError(error) && error.problem).toBe('not-qemu');
    expect(readdirSync(parent)).toEqual([]);
  });

  it('refuses an unpacked root without its module dir; nothing created', async () => {
    const root = path.join(tmp.dir, 'root-without-modules');
    mkdirSync(path.join(root, 'usr/bin'), { recursive: true });
    mkdirSync(path.join(root, 'usr/share/qemu'), { recursive: true });
    const target = have10
      ? path.join(qemuCacheDir(cacheDir, '10.0'), 'root/usr/bin/qemu-system-x86_64')
      : ((await resolveBinary('qemu-system-x86_64')) ?? '');
    symlinkSync(target, path.join(root, 'usr/bin/qemu-system-x86_64'));
    const { config, runDir } = await pcGuest();
    const error = await launch(config, {
      qemu: path.join(root, 'usr/bin/qemu-system-x86_64'),
      runDir,
    }).catch((e: unknown) => e);
    expect(isQemuBinaryError(error) && error.problem).toBe('missing-module-dir');
    expect(existsSync(runDir)).toBe(false);
  });

  it('refuses to relaunch a state pinned to a type the binary lacks; nothing changed', async () => {
    const { config, runDir } = await pcGuest();
    const m = started.add(await launch(config, { runDir, logger: quiet }));
    await m.stop();
    const file = path.join(runDir, 'state.json');
    const doc = JSON.parse(readFileSync(file, 'utf8'));
    doc.launch.machineType = 'pc-i440fx-99.0';
    writeFileSync(file, `${JSON.stringify(doc, null, 2)}\n`);
    const before = tree(runDir);
    const error = await Machine.relaunch(file, { logger: quiet }).catch((e: unknown) => e);
    expect(isMachineTypeError(error)).toBe(true);
    if (!isMachineTypeError(error)) return;
    expect(error.machineType).toBe('pc-i440fx-99.0');
    expect(error.known).toContain(`pc-i440fx-${m.qemuVersion.major}.${m.qemuVersion.minor}`);
    expect(tree(runDir)).toEqual(before);
  });

  it('refuses to relaunch a state whose binary no longer exists; nothing changed', async () => {
    const link = path.join(tmp.dir, 'qemu-link');
    symlinkSync((await resolveBinary('qemu-system-x86_64')) ?? '', link);
    const { config, runDir } = await pcGuest();
    const m = started.add(await launch(config, { qemu: link, runDir, logger: quiet }));
    await m.stop();
    const file = path.join(runDir, 'state.json');
    expect(readDoc(file).launch.binary?.path).toBe(link);
    unlinkSync(link);
    const before = tree(runDir);
    const error = await Machine.relaunch(file, { logger: quiet }).catch((e: unknown) => e);
    expect(isQemuBinaryError(error) && error.problem).toBe('not-found');
    expect(String((error as Error).message)).toContain(link);
    expect(tree(runDir)).toEqual(before);
  });
});

describe.skipIf(skip10)('pinning across 7.2 → 10.0', () => {
  let qemu10: QemuBinary;
  async function binary10(): Promise<QemuBinary> {
    qemu10 ??= await resolveQemuBinary('10.0', { cacheDir });
    return qemu10;
  }

  it('pc on 10.0 alone pins 10.0’s own type', async () => {
    const b = await binary10();
    const { config, runDir } = await pcGuest();
    const m = started.add(await launch(config, { qemu: b, runDir, logger: quiet }));
    expect(m.qemuVersion.major).toBe(10);
    expect(m.argv.slice(0, 3)).toEqual([b.path, '-L', b.dataDir]);
    expect(await runningType(m)).toBe('pc-i440fx-10.0');
    expect(m.machineType).toBe('pc-i440fx-10.0');
    await m.stop();
  });

  it('a VM first launched on 7.2 with pc keeps pc-i440fx-7.2 when relaunched on 10.0', async () => {
    const { config, runDir } = await pcGuest();
    const m = started.add(await launch(config, { runDir, logger: quiet }));
    expect(m.qemuVersion).toMatchObject({ major: 7, minor: 2 });
    await m.stop();
    const file = path.join(runDir, 'state.json');
    const b = await binary10();
    const again = started.add(await Machine.relaunch(file, { qemu: b, logger: quiet }));
    expect(again.qemuVersion.major).toBe(10);
    expect(again.argv[0]).toBe(b.path);
    expect(machineArg(again.argv)).toBe('type=pc-i440fx-7.2');
    expect(await runningType(again)).toBe('pc-i440fx-7.2');
    const doc = readDoc(file);
    expect(doc.launch.machineType).toBe('pc-i440fx-7.2');
    expect(doc.launch.binary?.path).toBe(b.path);
    expect(doc.launch.binary?.version).toBe(b.version);
    await again.stop();
    // The state now names 10.0: a plain relaunch stays on it, still on the pinned type.
    const third = started.add(await Machine.relaunch(file, { logger: quiet }));
    expect(third.qemuVersion.major).toBe(10);
    expect(await runningType(third)).toBe('pc-i440fx-7.2');
    await third.stop();
  });
});
