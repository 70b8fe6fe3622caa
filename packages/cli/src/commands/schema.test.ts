import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CAPTURE_DIR, CAPTURE_FILE, recordingIo } from '../cli.test-support.js';
import { main } from '../main.js';

interface Entry {
  name: string;
  'meta-type': string;
  'arg-type'?: string;
  'ret-type'?: string;
  values?: string[];
  members?: { name: string; type?: string; default?: null }[];
  features?: string[];
}

let dir: string;
let modified: string;
let replies: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'qmpkit-diff-'));
  const list = JSON.parse(readFileSync(CAPTURE_FILE, 'utf8')) as Entry[];
  const byName = (meta: string, name: string) =>
    list.find((e) => e['meta-type'] === meta && e.name === name)!;
  const typeOf = (name: string) =>
    list.find(
      (e) => e['meta-type'] !== 'command' && e['meta-type'] !== 'event' && e.name === name,
    )!;
  const changed = structuredClone(list);
  const find = (meta: string, name: string) =>
    changed.find((e) => e['meta-type'] === meta && e.name === name)!;
  // 1. a command removed, 2. one added, 3. one deprecated
  changed.splice(changed.indexOf(find('command', 'query-uuid')), 1);
  changed.push({
    name: 'x-hello',
    'meta-type': 'command',
    'arg-type': byName('command', 'query-status')['arg-type']!,
    'ret-type': byName('command', 'query-status')['arg-type']!,
  });
  find('command', 'query-version').features = ['deprecated'];
  // 4. an argument added
  const delArgs = typeOf(byName('command', 'blockdev-del')['arg-type']!).name;
  changed
    .find((e) => e.name === delArgs && e['meta-type'] === 'object')!
    .members!.push({ name: 'force', type: 'bool', default: null });
  // 5. an enum value added (RunState: the enum with 'prelaunch')
  changed
    .find((e) => e['meta-type'] === 'enum' && e.values?.includes('prelaunch'))!
    .values!.push('hibernating');
  // 6. an event removed
  changed.splice(changed.indexOf(find('event', 'SUSPEND_DISK')), 1);
  modified = path.join(dir, 'modified.json');
  writeFileSync(modified, JSON.stringify({ return: changed }));
  // The same capture as a libvirt-style .replies recording.
  replies = path.join(dir, 'qemu-7.2.replies');
  writeFileSync(
    replies,
    [
      { execute: 'query-version', id: 'libvirt-1' },
      { return: { qemu: { major: 7, minor: 2, micro: 22 }, package: 'test' }, id: 'libvirt-1' },
      { execute: 'query-qmp-schema', id: 'libvirt-2' },
      { return: list, id: 'libvirt-2' },
    ]
      .map((v) => JSON.stringify(v, null, 2))
      .join('\n\n'),
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function run(...argv: string[]) {
  const io = recordingIo();
  const code = await main(argv, io);
  return { code, out: io.out(), err: io.err() };
}

describe('qmpkit schema diff', () => {
  it('the committed 7.2 capture against itself: no changes (dir and file forms)', async () => {
    const same = await run('schema', 'diff', CAPTURE_DIR, CAPTURE_DIR);
    expect(same.code).toBe(0);
    expect(same.out).toContain('no changes');
    const mixed = await run('schema', 'diff', CAPTURE_DIR, CAPTURE_FILE, '--exit-code');
    expect(mixed.code).toBe(0);
    expect(mixed.out).toContain('no changes');
    const recorded = await run('schema', 'diff', replies, CAPTURE_DIR, '--json');
    expect(JSON.parse(recorded.out)).toMatchObject({
      a: { kind: 'replies', qemuVersion: '7.2.22' },
      changes: [],
    });
  });

  it('against a modified copy: commands, arguments, events, enum values, deprecations, grouped', async () => {
    const { code, out, err } = await run('schema', 'diff', CAPTURE_DIR, modified);
    expect(err).toBe('');
    expect(code).toBe(0);
    expect(out).toContain(`--- ${CAPTURE_DIR} (directory, QEMU 7.2.22)`);
    expect(out).toContain(
      'Commands (3)\n  - command query-uuid\n  ! command query-version deprecated\n  + command x-hello\n',
    );
    expect(out).toContain('Command arguments (1)\n  + argument blockdev-del.force (bool)');
    expect(out).toContain('Events (1)\n  - event SUSPEND_DISK');
    expect(out).toMatch(/Enum values \(1\)\n {2}\+ enum-value \S+\.hibernating/);
    expect(out).toContain('6 changes: 3 added, 2 removed, 1 deprecated');
    expect(out).not.toContain('\u001b['); // NO_COLOR
  });

  it('--json lists the changes; --exit-code exits 1 when there are any', async () => {
    const { code, out } = await run(
      'schema',
      'diff',
      CAPTURE_DIR,
      modified,
      '--json',
      '--exit-code',
    );
    expect(code).toBe(1);
    const report = JSON.parse(out) as { changes: { kind: string; target: string; path: string }[] };
    expect(report.changes.map((c) => `${c.kind} ${c.target} ${c.path}`).sort()).toEqual(
      [
        'added argument blockdev-del.force',
        'added command x-hello',
        `added enum-value ${report.changes.find((c) => c.target === 'enum-value')!.path}`,
        'deprecated command query-version',
        'removed command query-uuid',
        'removed event SUSPEND_DISK',
      ].sort(),
    );
  });

  it('accepts QEMU version names (6.2, qemu-7.2) for the captures it knows', async () => {
    const { code, out, err } = await run('schema', 'diff', '6.2', 'qemu-7.2');
    expect(err).toBe('');
    expect(code).toBe(0);
    expect(out).toContain('--- 6.2 (directory, QEMU 6.2.0)\n+++ qemu-7.2 (directory, QEMU 7.2.22)');
    expect(out).toContain(
      '+ branch BlockdevOptions[snapshot-access] (BlockdevOptionsGenericFormat)',
    );
    const unknown = await run('schema', 'diff', '6.2', '9.9');
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/9\.9: no such file .* or a QEMU version: 4\.2, .*7\.2, 10\.0\)/);
  });

  it('unreadable inputs exit 2 with the input named', async () => {
    const missing = await run('schema', 'diff', CAPTURE_DIR, path.join(dir, 'nope.json'));
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/nope\.json: no such file or directory/);
    const bad = path.join(dir, 'bad.json');
    writeFileSync(bad, '{"return": 3}');
    const invalid = await run('schema', 'diff', bad, CAPTURE_DIR);
    expect(invalid.code).toBe(2);
    expect(invalid.err).toMatch(/bad\.json: not a SchemaInfo list/);
    const unreachable = await run(
      'schema',
      'diff',
      CAPTURE_DIR,
      `unix:${path.join(dir, 'no.sock')}`,
    );
    expect(unreachable.code).toBe(2);
    expect(unreachable.err).toMatch(/cannot connect to unix:.*no such socket file/);
  });
});
