import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MiB, type VmConfig } from '@qmpkit/devices';
import { afterAll, describe, expect, it } from 'vitest';
import { isStateFileError, type StateFileError } from './errors.js';
import {
  type MigrationRecord,
  type RuntimeFacts,
  readState,
  STATE_FORMAT,
  STATE_VERSION,
  STATE_VERSION_MIGRATING,
  type StoredLaunch,
  stateDocument,
  writeFileAtomic,
  writeState,
} from './state.js';

const root = mkdtempSync(path.join(tmpdir(), 'qmpkit-machine-state-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const dir = () => {
  const d = path.join(root, `d${++n}`);
  mkdirSync(d, { mode: 0o700 });
  return d;
};

const config: VmConfig = {
  machine: { type: 'pc' },
  accel: ['kvm', 'tcg'],
  memory: { size: 32 * MiB },
  qmp: { chardev: 'qmpkit-qmp' },
  chardevs: [{ id: 'ser0', backend: { type: 'null', data: {} } }],
  devices: [{ driver: 'isa-serial', id: 'com1', chardev: 'ser0' }],
};
const launch: StoredLaunch = {
  qemu: 'qemu-system-x86_64',
  consoles: [{ chardev: 'ser0', encoding: 'utf8' }],
  assemble: 'argv',
  extraArgs: [],
  launchTimeout: 30_000,
};
const runtime: RuntimeFacts = {
  runDir: '/run/vm',
  ownsRunDir: false,
  status: 'running',
  pid: 1234,
  pidStartTime: 5678,
  parentPid: 1000,
  qemuBinary: '/usr/bin/qemu-system-x86_64',
  qemuVersion: { major: 7, minor: 2, micro: 22, package: 'Debian' },
  accel: 'kvm',
  exit: null,
  trays: { cd0: 'open' },
  updatedAt: '2025-01-01T00:00:00.000Z',
};

async function thrown(p: Promise<unknown>): Promise<StateFileError> {
  const e = await p.catch((error: unknown) => error);
  if (!isStateFileError(e)) throw new Error(`expected a StateFileError, got ${String(e)}`);
  return e;
}

describe('writeFileAtomic / writeState', () => {
  it('writes a 0600 file, keeps the previous version as .bak and leaves no temp files', async () => {
    const d = dir();
    const file = path.join(d, 'state.json');
    await writeFileAtomic(file, 'one\n');
    expect(readFileSync(file, 'utf8')).toBe('one\n');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readdirSync(d)).toEqual(['state.json']);
    await writeFileAtomic(file, 'two\n');
    expect(readFileSync(file, 'utf8')).toBe('two\n');
    expect(readFileSync(`${file}.bak`, 'utf8')).toBe('one\n');
    expect(statSync(`${file}.bak`).mode & 0o777).toBe(0o600);
    expect(readdirSync(d).sort()).toEqual(['state.json', 'state.json.bak']);
  });

  it('leaves the file untouched when a write fails', async () => {
    const d = dir();
    const file = path.join(d, 'state.json');
    await writeFileAtomic(file, 'good\n');
    mkdirSync(`${file}.bak`); // the backup step cannot replace a directory
    const e = await thrown(writeFileAtomic(file, 'new\n'));
    expect(e.problem).toBe('write-failed');
    expect(readFileSync(file, 'utf8')).toBe('good\n');
    expect(readdirSync(d).sort()).toEqual(['state.json', 'state.json.bak']);
    const missing = await thrown(writeFileAtomic(path.join(d, 'no', 'state.json'), 'x'));
    expect(missing.problem).toBe('write-failed');
    expect(missing.issues).toEqual(['ENOENT']);
  });

  it('round-trips a state document', async () => {
    const file = path.join(dir(), 'state.json');
    await writeState(file, stateDocument(config, launch, runtime));
    const doc = JSON.parse(readFileSync(file, 'utf8')) as { format: string; version: number };
    expect(doc).toMatchObject({ format: STATE_FORMAT, version: STATE_VERSION });
    expect(await readState(file)).toEqual({ config, launch, runtime });
  });

  it('writes a migration in flight as v3 and reads it back; v2 with one is refused', async () => {
    const file = path.join(dir(), 'state.json');
    const migration: MigrationRecord = {
      role: 'source',
      phase: 'transferring',
      peer: { runDir: '/run/target', stateFile: '/run/target/state.json', createdRunDir: true },
      startedAt: '2026-01-01T00:00:00.000Z',
    };
    await writeState(file, stateDocument(config, launch, { ...runtime, migration }));
    const doc = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    expect(doc.version).toBe(STATE_VERSION_MIGRATING);
    expect((await readState(file)).runtime.migration).toEqual(migration);
    writeFileSync(file, JSON.stringify({ ...doc, version: STATE_VERSION }));
    expect((await thrown(readState(file))).issues).toEqual([
      '$.runtime.migration: is written only in version 3',
    ]);
    const bad = { ...migration, phase: 'halfway', peer: { runDir: 'rel' } };
    writeFileSync(
      file,
      JSON.stringify({ ...doc, runtime: { ...(doc.runtime as object), migration: bad } }),
    );
    expect((await thrown(readState(file))).issues).toEqual([
      expect.stringMatching(/^\$\.runtime\.migration\.phase: expected one of "starting-target"/),
      '$.runtime.migration.peer.runDir: expected an absolute path, got "rel"',
      '$.runtime.migration.peer.stateFile: expected a string or null, got missing',
      '$.runtime.migration.peer.createdRunDir: expected a boolean, got missing',
    ]);
  });
});

describe('readState', () => {
  async function stored(mutate: (doc: Record<string, unknown>) => void) {
    const d = dir();
    const file = path.join(d, 'state.json');
    await writeState(file, stateDocument(config, launch, runtime));
    const doc = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    mutate(doc);
    writeFileSync(file, JSON.stringify(doc));
    return file;
  }

  it('names a truncated file as not JSON, and the backup when there is a good one', async () => {
    const d = dir();
    const file = path.join(d, 'state.json');
    await writeState(file, stateDocument(config, launch, runtime));
    const noBackup = await thrown(
      (async () => {
        writeFileSync(file, '{"format": "qmpkit-machine/st');
        return readState(file);
      })(),
    );
    expect(noBackup.problem).toBe('not-json');
    expect(noBackup.backup).toBeUndefined();
    expect(noBackup.message).toMatch(/is not valid JSON \(truncated or corrupt\)/);
    await writeState(file, stateDocument(config, launch, runtime));
    await writeState(file, stateDocument(config, launch, { ...runtime, pid: 99 }));
    writeFileSync(file, '');
    const e = await thrown(readState(file));
    expect(e.problem).toBe('not-json');
    expect(e.backup).toBe(`${file}.bak`);
    expect(e.message).toContain(`the previous good state is kept in ${file}.bak`);
    expect(readFileSync(file, 'utf8')).toBe('');
  });

  it('names every wrong field by path', async () => {
    const file = await stored((doc) => {
      const rt = doc.runtime as Record<string, unknown>;
      rt.pid = -1;
      rt.status = 'sleeping';
      rt.trays = { cd0: 'half-open' };
      rt.extra = true;
      (doc.launch as Record<string, unknown>).assemble = 'both';
    });
    const e = await thrown(readState(file));
    expect(e.problem).toBe('format');
    expect(e.issues).toEqual([
      '$.launch.assemble: expected "argv" or "qmp", got "both"',
      '$.runtime.extra: is not a field of this document',
      '$.runtime.status: expected "starting", "running", "stopped" or "exited", got "sleeping"',
      '$.runtime.pid: expected a non-negative integer or null, got -1',
      '$.runtime.trays.cd0: expected "open" or "closed", got "half-open"',
    ]);
  });

  it('refuses other formats and newer versions', async () => {
    const other = await stored((doc) => {
      doc.format = 'something-else';
    });
    expect((await thrown(readState(other))).issues).toEqual([
      '$.format: is "something-else", expected "qmpkit-machine/state"',
    ]);
    const newer = await stored((doc) => {
      doc.version = STATE_VERSION_MIGRATING + 1;
    });
    expect((await thrown(readState(newer))).issues[0]).toMatch(/newer than this package reads/);
    const array = path.join(dir(), 'state.json');
    writeFileSync(array, '[]');
    expect((await thrown(readState(array))).issues).toEqual([
      '$: expected an object, got an array',
    ]);
  });

  it('reports problems of the stored configuration with their path in the file', async () => {
    const file = await stored((doc) => {
      const devices = ((doc.config as Record<string, unknown>).config as { devices: unknown[] })
        .devices;
      devices.push({ driver: 'virtio-blk-pci', id: 'vd0', drive: 'missing' });
    });
    const e = await thrown(readState(file));
    expect(e.problem).toBe('config');
    expect(e.issues.join('\n')).toContain('$.config.config.devices[1].drive');
  });

  it('reports a missing file as unreadable', async () => {
    const e = await thrown(readState(path.join(dir(), 'nope.json')));
    expect(e.problem).toBe('unreadable');
    expect(e.issues).toEqual(['ENOENT']);
  });
});
