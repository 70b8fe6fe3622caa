import { describe, expect, it } from 'vitest';
import type { SchemaTables } from './tables.js';
import {
  alternateBranch,
  formatProblem,
  validateArgs,
  validateEvent,
  validateReturn,
  validateValue,
} from './validate.js';

const tables: SchemaTables = {
  format: 1,
  qemuVersion: '0.0.0-test',
  types: {
    Driver: { kind: 'enum', values: ['file', 'qcow2', 'raw'] },
    Base: {
      kind: 'object',
      members: [
        { name: 'driver', type: 'Driver' },
        { name: 'node-name', type: 'str', optional: true },
      ],
    },
    Options: {
      kind: 'object',
      members: [
        { name: 'driver', type: 'Driver' },
        { name: 'node-name', type: 'str', optional: true },
      ],
      tag: 'driver',
      variants: { file: 'FileBranch', qcow2: 'Qcow2Branch' },
    },
    FileBranch: { kind: 'object', members: [{ name: 'filename', type: 'str' }] },
    Qcow2Branch: {
      kind: 'object',
      members: [
        { name: 'file', type: 'Ref' },
        { name: 'cache-size', type: 'uint8', optional: true },
      ],
    },
    Ref: { kind: 'alternate', alternatives: ['Options', 'str'] },
    Args: {
      kind: 'object',
      members: [
        { name: 'options', type: 'Options' },
        { name: 'tags', type: '[str]', optional: true },
        { name: 'ratio', type: 'number', optional: true },
        { name: 'anything', type: 'any', optional: true },
        { name: 'nothing', type: 'null', optional: true },
      ],
    },
    Status: { kind: 'object', members: [{ name: 'running', type: 'bool' }] },
  },
  commands: {
    add: { args: 'Args' },
    device_add: { args: 'Status', openArgs: true },
    'query-status': { returns: 'Status' },
    'query-list': { returns: '[Status]' },
  },
  events: { STOP: {}, CHANGED: { data: 'Status' } },
};

const add = (value: unknown) => validateArgs(tables, 'add', value).map(formatProblem);

describe('validateArgs', () => {
  it('accepts a valid union value and an alternate given as a reference', () => {
    expect(add({ options: { driver: 'qcow2', file: 'disk0' } })).toEqual([]);
    expect(add({ options: { driver: 'qcow2', file: { driver: 'file', filename: '/x' } } })).toEqual(
      [],
    );
    expect(add({ options: { driver: 'raw' } })).toEqual([]);
  });

  it('reports a bad enum value with the path and the accepted values', () => {
    expect(add({ options: { driver: 'qcow3' } })).toEqual([
      "$.options.driver: expected one of 'file' | 'qcow2' | 'raw', got 'qcow3' (Driver)",
    ]);
  });

  it('reports missing, unexpected and wrongly typed members at their paths', () => {
    expect(add({ options: { driver: 'file', size: 1 }, tags: ['a', 2] })).toEqual([
      "$.options.filename: missing required member 'filename' (str)",
      "$.options.size: unexpected member 'size' (Options has no such member)",
      '$.tags[1]: expected a string, got 2',
    ]);
  });

  it('checks integer ranges and numbers', () => {
    expect(add({ options: { driver: 'qcow2', file: 'x', 'cache-size': 256 } })).toEqual([
      '$.options.cache-size: 256 is out of range for uint8 (0..255)',
    ]);
    expect(add({ options: { driver: 'qcow2', file: 'x', 'cache-size': 1.5 } })).toEqual([
      '$.options.cache-size: expected an integer, got 1.5',
    ]);
    expect(
      add({ options: { driver: 'raw' }, ratio: 0.5, anything: { a: [1] }, nothing: null }),
    ).toEqual([]);
  });

  it('rejects a value no alternative accepts', () => {
    expect(add({ options: { driver: 'qcow2', file: 7 } })).toEqual([
      '$.options.file: expected object or string (Ref), got 7',
    ]);
  });

  it('treats undefined members as absent, like JSON.stringify does', () => {
    expect(add({ options: { driver: 'raw', 'node-name': undefined } })).toEqual([]);
  });

  it('lets commands QEMU does not check (gen: false) take extra top-level members', () => {
    expect(
      validateArgs(tables, 'device_add', { running: true, drive: 'disk0', 'num-queues': 2 }),
    ).toEqual([]);
    expect(validateArgs(tables, 'device_add', { running: 'no' }).map(formatProblem)).toEqual([
      '$.running: expected a boolean, got "no"',
    ]);
  });

  it('knows unknown commands and argument-less commands', () => {
    expect(validateArgs(tables, 'nope', {})[0]?.kind).toBe('unknown-command');
    expect(validateArgs(tables, 'query-status', undefined)).toEqual([]);
    expect(validateArgs(tables, 'query-status', { a: 1 })[0]?.kind).toBe('no-arguments');
  });

  it('returns kinds and QEMU-style expected JSON types for callers that reword errors', () => {
    const [problem] = validateArgs(tables, 'add', { options: { driver: 'file', filename: 3 } });
    expect(problem).toMatchObject({ path: '$.options.filename', kind: 'type', expected: 'string' });
  });
});

describe('decoding replies and events', () => {
  it('validates returns, including lists and the empty object', () => {
    expect(validateReturn(tables, 'query-status', { running: true })).toEqual([]);
    expect(validateReturn(tables, 'query-list', [{ running: 'yes' }]).map(formatProblem)).toEqual([
      '$[0].running: expected a boolean, got "yes"',
    ]);
    expect(validateReturn(tables, 'add', {})).toEqual([]);
    expect(validateReturn(tables, 'add', { x: 1 })).toHaveLength(1);
  });

  it('tolerates forward-compatible differences in open mode only', () => {
    const newer = { options: { driver: 'vvfat', dir: '/x' } };
    expect(validateValue(tables, 'Args', newer).map((p) => p.kind)).toEqual(['enum']);
    expect(validateValue(tables, 'Args', newer, { open: true })).toEqual([]);
    expect(validateValue(tables, 'Status', { running: true, extra: 1 }, { open: true })).toEqual(
      [],
    );
    expect(validateValue(tables, 'Status', { running: 1 }, { open: true })).toHaveLength(1);
  });

  it('validates event data', () => {
    expect(validateEvent(tables, 'STOP', undefined)).toEqual([]);
    expect(validateEvent(tables, 'CHANGED', { running: false })).toEqual([]);
    expect(validateEvent(tables, 'CHANGED', undefined).map(formatProblem)).toEqual([
      "$.running: missing required member 'running' (bool)",
    ]);
    expect(validateEvent(tables, 'NEWER', {})[0]?.forwardCompatible).toBe(true);
    expect(validateEvent(tables, 'NEWER', {}, { open: true })).toEqual([]);
  });

  it('caps the number of problems', () => {
    const many = { options: { driver: 'raw' }, tags: Array.from({ length: 100 }, () => 1) };
    expect(validateValue(tables, 'Args', many)).toHaveLength(50);
    expect(validateValue(tables, 'Args', many, { maxProblems: 3 })).toHaveLength(3);
  });
});

describe('alternateBranch', () => {
  it('picks the alternative by JSON type', () => {
    expect(alternateBranch(tables, 'Ref', 'disk0')).toBe('str');
    expect(alternateBranch(tables, 'Ref', { driver: 'raw' })).toBe('Options');
    expect(alternateBranch(tables, 'Ref', 3)).toBeUndefined();
    expect(() => alternateBranch(tables, 'Args', 3)).toThrow(/not an alternate/);
  });
});
