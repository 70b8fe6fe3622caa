/**
 * Without QEMU: `-machine help` parsing, and a state file written by the code before state
 * version 2 (`fixtures/state-v1.json`, written by that code's `writeState`) still loads.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isStateFileError } from './errors.js';
import { parseMachineHelp, resolveMachineType } from './machine-type.js';
import { readState, STATE_VERSION } from './state.js';

const fixture = path.join(import.meta.dirname, 'fixtures', 'state-v1.json');
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('machine types from -machine help', () => {
  const help = [
    'Supported machines are:',
    'microvm              microvm (i386)',
    'pc                   Standard PC (i440FX + PIIX, 1996) (alias of pc-i440fx-7.2)',
    'pc-i440fx-7.2        Standard PC (i440FX + PIIX, 1996) (default)',
    'pc-i440fx-7.1        Standard PC (i440FX + PIIX, 1996)',
    'q35                  Standard PC (Q35 + ICH9, 2009) (alias of pc-q35-7.2)',
    'pc-q35-7.2           Standard PC (Q35 + ICH9, 2009)',
    'none                 empty machine',
    '',
  ].join('\n');
  const types = parseMachineHelp(help);
  const binary = { path: 'qemu-system-x86_64', version: '7.2.22' };

  it('reads names, aliases and the default', () => {
    expect(types.map((t) => t.name)).toEqual([
      'microvm',
      'pc',
      'pc-i440fx-7.2',
      'pc-i440fx-7.1',
      'q35',
      'pc-q35-7.2',
      'none',
    ]);
    expect(types.find((t) => t.name === 'q35')?.aliasOf).toBe('pc-q35-7.2');
    expect(types.filter((t) => t.isDefault).map((t) => t.name)).toEqual(['pc-i440fx-7.2']);
  });

  it('resolves an alias to its versioned type and keeps a versioned one', () => {
    expect(resolveMachineType('pc', types, binary, false)).toBe('pc-i440fx-7.2');
    expect(resolveMachineType('q35', types, binary, false)).toBe('pc-q35-7.2');
    expect(resolveMachineType('pc-i440fx-7.1', types, binary, true)).toBe('pc-i440fx-7.1');
  });

  it('refuses a type the binary lacks with a MachineTypeError', () => {
    let error: unknown;
    try {
      resolveMachineType('pc-i440fx-10.0', types, binary, true);
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({
      name: 'MachineTypeError',
      machineType: 'pc-i440fx-10.0',
      binaryVersion: '7.2.22',
    });
    expect((error as { known: string[] }).known).toContain('pc-i440fx-7.2');
  });
});

describe('state format versions', () => {
  it('reads a version 1 file as it is (no binary, no pinned type)', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'qmpkit-pinning-'));
    dirs.push(dir);
    const file = path.join(dir, 'state.json');
    await copyFile(fixture, file);
    const before = readFileSync(file);
    const state = await readState(file);
    expect(JSON.parse(before.toString()).version).toBe(1);
    expect(STATE_VERSION).toBe(2);
    expect(state.config.machine.type).toBe('pc');
    expect(state.launch.qemu).toBe('qemu-system-x86_64');
    expect(state.launch.binary).toBeUndefined();
    expect(state.launch.machineType).toBeUndefined();
    expect(state.runtime.qemuVersion).toMatchObject({ major: 7, minor: 2, micro: 22 });
    // Reading writes nothing.
    expect(readFileSync(file)).toEqual(before);
  });

  it('refuses version 2 fields in a version 1 file', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'qmpkit-pinning-'));
    dirs.push(dir);
    const file = path.join(dir, 'state.json');
    const doc = JSON.parse(readFileSync(fixture, 'utf8'));
    doc.launch.machineType = 'pc-i440fx-7.2';
    writeFileSync(file, JSON.stringify(doc));
    const error = await readState(file).catch((e: unknown) => e);
    expect(isStateFileError(error) && error.issues).toEqual([
      '$.launch.machineType: is not a field of version 1',
    ]);
  });
});
