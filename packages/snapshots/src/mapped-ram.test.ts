import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  chooseEncoding,
  DEFAULT_MAPPED_RAM_SAVE,
  fileUriFor,
  type MappedRamSupport,
  probeDirectIo,
  recordedEncoding,
} from './mapped-ram.js';

const all: MappedRamSupport = { mappedRam: true, multifdChannels: true, directIo: true };
const none: MappedRamSupport = { mappedRam: false, multifdChannels: true, directIo: false };
const request = {
  portable: false,
  live: false,
  uriOk: true,
  directIoOk: true,
  tuning: { multifdChannels: 4, directIo: true },
};

describe('chooseEncoding', () => {
  it('picks mapped-ram with the tuning where the schema has everything', () => {
    expect(chooseEncoding(all, request)).toEqual({
      format: 'mapped-ram',
      multifdChannels: 4,
      directIo: true,
    });
    expect(chooseEncoding(all, { ...request, tuning: DEFAULT_MAPPED_RAM_SAVE })).toEqual({
      format: 'mapped-ram',
      multifdChannels: 4,
      directIo: false,
    });
  });

  it('writes the stream when portable, live, without mapped-ram or without a file: URI', () => {
    for (const r of [
      { ...request, portable: true },
      { ...request, live: true },
      { ...request, uriOk: false },
    ])
      expect(chooseEncoding(all, r)).toEqual({ format: 'stream' });
    expect(chooseEncoding(none, request)).toEqual({ format: 'stream' });
  });

  it('uses direct I/O only with multifd, where the schema and the file system allow it', () => {
    const one = { ...request, tuning: { multifdChannels: 0, directIo: true } };
    expect(chooseEncoding(all, one)).toEqual({
      format: 'mapped-ram',
      multifdChannels: 0,
      directIo: false,
    });
    expect(chooseEncoding(all, { ...request, directIoOk: false })).toMatchObject({
      directIo: false,
    });
    expect(chooseEncoding({ ...all, directIo: false }, request)).toMatchObject({
      directIo: false,
    });
    expect(chooseEncoding({ ...all, multifdChannels: false }, request)).toEqual({
      format: 'mapped-ram',
      multifdChannels: 0,
      directIo: false,
    });
  });
});

describe('recordedEncoding', () => {
  it('reads a state file without the field (manifests written before it) as the stream', () => {
    expect(recordedEncoding({})).toEqual({ format: 'stream' });
    expect(recordedEncoding(undefined)).toEqual({ format: 'stream' });
    const mapped = { format: 'mapped-ram', multifdChannels: 4, directIo: false } as const;
    expect(recordedEncoding({ encoding: mapped })).toBe(mapped);
  });
});

describe('fileUriFor', () => {
  it('names a path as a file: URI unless QEMU would read ",offset=" in it as an option', () => {
    expect(fileUriFor('/s/states/a.state')).toBe('file:/s/states/a.state');
    expect(fileUriFor('/s/x,offset=4/a.state')).toBeUndefined();
  });
});

describe('probeDirectIo', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('says yes for a directory on ext4/xfs (the temp dir here) and leaves no probe file', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'qmpkit-dio-'));
    dirs.push(dir);
    expect(await probeDirectIo(dir)).toBe(true);
    expect(await readdir(dir)).toEqual([]);
  });

  it('says no for a directory that does not exist', async () => {
    expect(await probeDirectIo(path.join(tmpdir(), 'qmpkit-no-such-dir', 'x'))).toBe(false);
  });
});
