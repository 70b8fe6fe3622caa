/**
 * Contract scenarios: each is run against a real QEMU (a `QemuBinary` of the shared test
 * support) and against the fake imitating the same version; the normalised transcripts must
 * be identical (see runner.ts and README.md here).
 */
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import {
  killQemu,
  privateTempDir,
  type QemuBinary,
  spawnQemu,
} from '@qmpkit/testguest/test-support';
import { connect } from '@qmpkit/transport';
import { InheritedFds } from '@qmpkit/transport/fd';
import type { Scenario, Step, StepContext } from './runner.js';
import { blockJobScenarios } from './scenarios-block-jobs.js';
import { storageDaemonScenarios } from './scenarios-storage-daemon.js';

const NEGOTIATE: Step = { send: '{"execute":"qmp_capabilities"}' };
const NEGOTIATE_OOB: Step = {
  send: '{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}',
};

const exec = (command: string, args?: unknown, id?: unknown): string =>
  JSON.stringify({
    execute: command,
    ...(args === undefined ? {} : { arguments: args }),
    ...(id === undefined ? {} : { id }),
  });

const hmp = (line: string): string => exec('human-monitor-command', { 'command-line': line });

/** Volatile numbers in query-migrate (times, rates) and snapshot dates/clocks/sizes. */
const MIGRATION_NUMBERS: readonly (readonly [RegExp, string])[] = [
  [/"(total-time|setup-time|downtime|expected-downtime)": \d+/g, '"$1": N'],
  [/"mbps": [\d.e+-]+/g, '"mbps": N'],
  // 10.0 counts the whole stream (7.2: RAM only, 0 here); the fake's stream is QEMU-shaped,
  // not byte-identical, so only "some bytes" is compared.
  [/"transferred": [1-9]\d*/g, '"transferred": N>0'],
];
const SNAPSHOT_VOLATILE: readonly (readonly [RegExp, string])[] = [
  [/"(date-sec|date-nsec|vm-clock-sec|vm-clock-nsec|actual-size)": \d+/g, '"$1": N'],
  [/ \d{4}-\d\d-\d\d \d\d:\d\d:\d\d +\d+:\d\d:\d\d\.\d{3}/g, ' DATE CLOCK'],
  // The qcow2 file grows by the saved VM state; its host size depends on QEMU's data.
  [
    /"virtual-size": \d+, "filename": "([^"]*)", "format": "file"/g,
    '"virtual-size": N, "filename": "$1", "format": "file"',
  ],
];

/** Creates an empty image with the binary's qemu-img in the peer's directory. */
function image(format: 'qcow2' | 'raw', name: string, size: string) {
  return (dir: string, binary: QemuBinary) => {
    execFileSync(binary.img, ['create', '-q', '-f', format, path.join(dir, name), size]);
  };
}
const qcow2 = (name: string, size = '16M') => image('qcow2', name, size);

const qcow2Node = (name: string, file: string): string[] => [
  exec('blockdev-add', { driver: 'file', filename: `$DIR/${file}`, 'node-name': `${name}-file` }),
  exec('blockdev-add', { driver: 'qcow2', file: `${name}-file`, 'node-name': name }),
];

/** Capabilities both sides of a live migration set (issue 16: events and return-path). */
const LIVE_CAPS = [
  { capability: 'events', state: true },
  { capability: 'return-path', state: true },
];

/** MIGRATION_NUMBERS plus the port a target chose and RAM counts of two peers. */
const TWO_PEER_NUMBERS: readonly (readonly [RegExp, string])[] = [
  ...MIGRATION_NUMBERS,
  [/"port": "\d+"/g, '"port": "P"'],
];

export const scenarios: Scenario[] = [
  {
    name: 'greeting and negotiation: only qmp_capabilities before it, oob enabled, no second time',
    setup: { machine: 'none' },
    steps: [
      { send: exec('query-status') },
      { send: exec('query-status', undefined, 1) },
      { send: exec('nope', undefined, 'x') },
      { send: exec('qmp_capabilities', { enable: ['bogus'] }) },
      { send: exec('qmp_capabilities', { enable: 'oob' }) },
      { send: exec('qmp_capabilities', { enable: ['oob'] }, 'neg') },
      { send: exec('qmp_capabilities') },
      { send: exec('qmp_capabilities', undefined, 7) },
      { send: exec('query-status') },
    ],
  },
  {
    name: 'negotiation without oob: exec-oob is an unexpected member',
    setup: { machine: 'none' },
    steps: [
      NEGOTIATE,
      { send: '{"exec-oob":"migrate-recover","arguments":{"uri":"x"},"id":1}' },
      { send: exec('query-version') },
    ],
  },
  {
    name: 'id echoed for any JSON value',
    setup: { machine: 'none' },
    steps: [
      NEGOTIATE,
      { send: '{"execute":"query-status","id":1}' },
      { send: '{"execute":"query-status","id":"a string"}' },
      { send: '{"execute":"query-status","id":{"x":[1,2.5,null,true],"y":{"z":"w"}}}' },
      { send: '{"execute":"query-status","id":[]}' },
      { send: '{"execute":"query-status","id":null}' },
      { send: '{"execute":"query-status","id":false}' },
      { send: '{"execute":"query-status","id":0.1}' },
      { send: '{"execute":"query-status","id":-7}' },
      { send: '{"execute":"query-status","id":12345678901234567890}' },
      { send: '{"execute":"query-status","id":1e400}' },
      { send: '{"execute":"query-status","id":-0.0}' },
      { send: '{"execute":"query-status","id":"\\u00e9\\u20ac\\ud83d\\ude00/\\t\\u007f\\u0000"}' },
      { send: '{"execute":"query-status","id":"é"}' },
      { send: '{"id":"first","execute":"query-status"}' },
    ],
  },
  {
    name: 'unknown command and command structure errors',
    setup: { machine: 'none' },
    steps: [
      NEGOTIATE,
      { send: exec('nope') },
      { send: exec('nope', undefined, 2) },
      { send: '{"execute":1}' },
      { send: '{"execute":"query-status","arguments":[]}' },
      { send: '{"exec":"x"}' },
      { send: '{"execute":"query-status","foo":1,"id":3}' },
      { send: '{"execute":"query-status","a":1,"b":2,"c":3}' },
      { send: '{"arguments":{}}' },
      { send: '{"return":{}}' },
      { send: '[1]' },
      { send: '1' },
      { send: '"str"' },
    ],
  },
  {
    name: 'missing parameters, top level and nested (file.driver, list element)',
    setup: { machine: 'none' },
    steps: [
      NEGOTIATE,
      { send: exec('blockdev-add', { driver: 'qcow2' }) },
      { send: exec('blockdev-add', { 'node-name': 'x' }) },
      {
        send: exec('blockdev-add', { driver: 'qcow2', 'node-name': 'q', file: { filename: '/x' } }),
      },
      { send: exec('migrate-set-capabilities', { capabilities: [{ state: true }] }) },
      { send: exec('snapshot-save', { 'job-id': 'j', tag: 't', vmstate: 'd' }) },
      { send: exec('device_add', {}) },
      { send: exec('blockdev-del', {}, 5) },
    ],
  },
  {
    name: 'unexpected parameters, top level, nested, several, and for commands without arguments',
    setup: { machine: 'none' },
    steps: [
      NEGOTIATE,
      { send: exec('query-status', { x: 1 }) },
      { send: exec('query-status', { a: 1, b: 2, c: 3, d: 4, e: 5 }) },
      { send: exec('blockdev-add', { driver: 'qcow2', 'node-name': 'q', file: 'x', bogus: 1 }) },
      {
        send: exec('blockdev-add', {
          driver: 'qcow2',
          'node-name': 'q',
          file: { driver: 'file', filename: '/x', bogus: 1 },
        }),
      },
      {
        send: exec('blockdev-add', {
          driver: 'null-co',
          'node-name': 'q',
          zzz: 1,
          aaa: 2,
          mmm: 3,
          qqq: 4,
          bbb: 5,
          yyy: 6,
          kkk: 7,
          ccc: 8,
          ddd: 9,
        }),
      },
      { send: exec('stop', { force: true }) },
    ],
  },
  {
    name: 'wrongly typed parameters: string, integer, boolean, array, object, alternate, list element',
    setup: { machine: 'none' },
    steps: [
      NEGOTIATE,
      { send: exec('blockdev-add', { driver: 'qcow2', 'node-name': 5, file: 'x' }) },
      { send: exec('blockdev-add', { driver: 'qcow2', 'node-name': 'q', file: 5 }) },
      {
        send: exec('blockdev-add', {
          driver: 'qcow2',
          'node-name': 'q',
          file: { driver: 'raw', file: 5 },
        }),
      },
      {
        send: exec('blockdev-add', {
          driver: 'qcow2',
          'node-name': 'q',
          file: { driver: 'raw', file: { driver: 'file', filename: 5 } },
        }),
      },
      { send: exec('blockdev-add', { driver: 'null-co', 'node-name': 'q', 'read-only': 'yes' }) },
      { send: exec('blockdev-add', { driver: 'null-co', 'node-name': 'q', size: '1M' }) },
      { send: exec('blockdev-add', { driver: 'null-co', 'node-name': 'q', size: 1.5 }) },
      { send: exec('blockdev-add', { driver: 'null-co', 'node-name': 'q', cache: 5 }) },
      { send: exec('snapshot-save', { 'job-id': 'j', tag: 't', vmstate: 'd', devices: 'x' }) },
      { send: exec('snapshot-save', { 'job-id': 'j', tag: 't', vmstate: 'd', devices: [1] }) },
      { send: exec('migrate-set-parameters', { 'max-bandwidth': 'x' }) },
      { send: exec('migrate-set-parameters', { 'max-bandwidth': 1.5 }) },
      { send: exec('migrate-set-parameters', { 'compress-level': 300 }) },
      { send: exec('migrate-set-parameters', { 'compress-level': -1 }) },
      { send: exec('migrate-set-parameters', { 'downtime-limit': -1 }) },
      { send: exec('migrate-set-parameters', { 'cpu-throttle-initial': 1.0 }) },
    ],
  },
  {
    name: 'invalid enum values: top level, nested union tag, list element (QEMU names it null)',
    setup: { machine: 'none' },
    steps: [
      NEGOTIATE,
      { send: exec('blockdev-add', { driver: 'qcow3', 'node-name': 'q' }) },
      {
        send: exec('blockdev-add', { driver: 'qcow2', 'node-name': 'q', file: { driver: 'foo' } }),
      },
      {
        send: exec('blockdev-add', {
          driver: 'file',
          'node-name': 'q',
          filename: '/x',
          aio: 'bad',
        }),
      },
      {
        send: exec('migrate-set-capabilities', {
          capabilities: [{ capability: 'evnts', state: true }],
        }),
      },
      { send: exec('blockdev-add', { driver: 'null-co', 'node-name': 'q', 'detect-zeroes': 5 }) },
    ],
  },
  {
    name: 'malformed JSON answered like QEMU: keywords, strays, separators, quotes, escapes, duplicates',
    setup: { machine: 'none' },
    steps: [
      NEGOTIATE,
      { send: 'garbage' },
      { send: '}' },
      { send: ']' },
      { send: '{"execute":"query-status",}' },
      { send: '{"execute" "query-status"}' },
      { send: '{1:2}' },
      { send: '[1 2]' },
      { send: '{"a":1 "b":2}' },
      { send: "{'execute':'query-status','id':'sq'}" },
      { send: '{"execute":"query-status","id":"x","id":"y"}' },
      { send: '{"execute":"query-status","id":"\\ud800"}' },
      { send: '{"execute":"query-status","id":"\\uffff"}' },
      { send: '{"execute":"query-status","id":"\\q"}' },
      { send: '{"execute":"query-status","id":"\\u12"}' },
      { send: '01', replies: 1 },
      { send: '@', replies: 1 },
      { send: 'tru€ {"execute":"query-status","id":"after"}', replies: 3 },
      { send: '{"execute":"query-status","id":"tab\there"}', replies: 2 },
      { send: '{"execute":"query-status"}{"execute":"query-status","id":9}', replies: 2 },
      { raw: '{"execute":\n"query-status",\n"id":"split"}\n', replies: 1 },
      { send: '[[[[[[[[[[1]]]]]]]]]]' },
      {
        send: '\u0000\u00ff garbage }{ [1,,] "unterminated\n{"execute":"query-status","id":"ok"}',
        replies: 4,
      },
    ],
  },
  {
    name: 'QMP input is a JSON stream: no newline, two objects in one write, one split across writes',
    setup: { machine: 'none' },
    steps: [
      { raw: '{"execute":"qmp_capabilities"}', replies: 1 },
      { raw: '{"execute":"query-status","id":1}{"execute":"query-status","id":2}', replies: 2 },
      {
        raw: ' \t{"execute":"query-status","id":3}\r\n{"execute":"query-status","id":4}',
        replies: 2,
      },
      { raw: '{"execute":"query-', replies: 0 },
      { raw: 'status","id":5', replies: 0 },
      { raw: '}', replies: 1 },
      { raw: "{'execute':'query-status','id':'}{'}[1]", replies: 2 },
      // A top-level scalar ends at the byte after it, not before.
      { raw: '42', replies: 0 },
      { raw: ' ', replies: 1 },
    ],
  },
  {
    name: 'JSON nesting limit: 1024 levels parse, the 1025th is refused and the parser recovers',
    setup: { machine: 'none' },
    steps: [
      NEGOTIATE,
      { send: `${'['.repeat(1024)}${']'.repeat(1024)}` },
      { send: `${'['.repeat(1025)}\n{"execute":"query-status","id":"after"}`, replies: 2 },
      // The outer object is level 1: 1023 nested arguments objects reach exactly 1024.
      {
        send: `{"execute":"query-status","id":"deep","arguments":${'{"a":'.repeat(1023)}1${'}'.repeat(1023)}}`,
      },
      { send: exec('query-status', undefined, 'last') },
    ],
  },
  {
    name: 'exec-oob rules after oob negotiation',
    setup: { machine: 'none' },
    steps: [
      NEGOTIATE_OOB,
      { send: '{"exec-oob":"query-status","id":3}' },
      { send: '{"exec-oob":"migrate-recover","arguments":{"uri":"x"},"id":4}' },
      { send: '{"exec-oob":"x-oob-test"}' },
      { send: '{"execute":"x","exec-oob":"y"}' },
      { send: '{"exec-oob":"qmp_capabilities","id":5}' },
      { send: '{"exec-oob":1}' },
    ],
  },
  {
    name: 'run state: stop/cont events, repeated stop/cont without events, HMP info status',
    setup: { machine: 'none' },
    steps: [
      NEGOTIATE,
      { send: exec('query-status') },
      { send: hmp('info status') },
      { send: exec('stop'), until: ['STOP'] },
      { send: exec('query-status') },
      { send: hmp('info status') },
      { send: exec('stop') },
      { send: exec('cont'), until: ['RESUME'] },
      { send: exec('cont') },
      { send: exec('query-status') },
    ],
  },
  {
    name: 'run state from -S: prelaunch, stop keeps it, cont resumes',
    setup: { machine: 'none', paused: true },
    steps: [
      NEGOTIATE,
      { send: exec('query-status') },
      { send: hmp('info status') },
      { send: exec('stop') },
      { send: exec('query-status') },
      { send: exec('cont'), until: ['RESUME'] },
      { send: exec('query-status') },
    ],
  },
  {
    name: 'system_reset and system_powerdown events',
    setup: { machine: 'none' },
    steps: [
      NEGOTIATE,
      { send: exec('system_reset'), until: ['RESET'] },
      { send: exec('system_powerdown'), until: ['POWERDOWN'] },
      { send: exec('query-status') },
    ],
  },
  {
    name: 'quit: SHUTDOWN, reply, connection closed',
    setup: { machine: 'none' },
    steps: [
      NEGOTIATE,
      { send: exec('quit', undefined, 'bye'), until: ['SHUTDOWN'] },
      { expectClose: true },
    ],
  },
  {
    name: 'HMP: unknown command, info snapshots without a vmstate node, savevm refused',
    setup: { machine: 'none' },
    steps: [
      NEGOTIATE,
      { send: hmp('nosuch') },
      { send: hmp('info snapshots') },
      { send: hmp('savevm x') },
      { send: hmp('delvm x') },
      { send: exec('human-monitor-command', {}) },
    ],
  },
  {
    name: 'block graph: null-co nodes, duplicates, query-named-block-nodes, blockdev-del',
    setup: { machine: 'none' },
    steps: [
      NEGOTIATE,
      { send: exec('query-named-block-nodes') },
      { send: exec('query-block') },
      { send: exec('blockdev-add', { driver: 'null-co', 'node-name': 'n0' }) },
      { send: exec('blockdev-add', { driver: 'null-co', 'node-name': 'n0' }) },
      {
        send: exec('blockdev-add', {
          driver: 'null-aio',
          'node-name': 'n1',
          size: 4096,
          'read-only': true,
        }),
      },
      { send: exec('blockdev-add', { driver: 'null-co' }) },
      { send: exec('blockdev-add', { driver: 'null-co', 'node-name': '1bad' }) },
      { send: exec('query-named-block-nodes') },
      { send: exec('query-named-block-nodes', { flat: true }) },
      { send: exec('blockdev-del', { 'node-name': 'nope' }) },
      { send: exec('blockdev-del', { 'node-name': 'n0' }) },
      { send: exec('query-named-block-nodes') },
    ],
  },
  {
    name: 'failed commands leave nothing behind: blockdev-add duplicate, refused overlay, device_add with a bad drive',
    setup: {
      machine: 'pc',
      paused: true,
      prepare: image('raw', 'ov.raw', '1M'),
    },
    steps: [
      NEGOTIATE,
      { send: exec('blockdev-add', { driver: 'null-co', 'node-name': 'n0' }) },
      { send: exec('blockdev-add', { driver: 'null-co', 'node-name': 'x' }) },
      // Fails on its name after taking a reference to n0: the reference must be dropped.
      { send: exec('blockdev-add', { driver: 'raw', file: 'n0', 'node-name': 'x' }) },
      {
        send: exec('blockdev-add', {
          driver: 'raw',
          file: { driver: 'null-co', 'node-name': 'inl' },
          'node-name': 'x',
        }),
      },
      { send: exec('blockdev-del', { 'node-name': 'n0' }) },
      { send: exec('query-named-block-nodes', { flat: true }) },
      { send: exec('blockdev-add', { driver: 'null-co', 'node-name': 'n1' }) },
      {
        send: exec('blockdev-snapshot-sync', {
          'node-name': 'n1',
          'snapshot-file': '$DIR/ov.raw',
          'snapshot-node-name': 'ov',
          format: 'raw',
          mode: 'existing',
        }),
      },
      { send: exec('query-named-block-nodes', { flat: true }) },
      { send: exec('blockdev-del', { 'node-name': 'n1' }) },
      { send: exec('blockdev-add', { driver: 'null-co', 'node-name': 'ov' }) },
      { send: exec('device_add', { driver: 'qemu-xhci', id: 'usb' }) },
      { send: exec('device_add', { driver: 'usb-storage', drive: 'nosuch' }) },
      { send: exec('device_add', { driver: 'usb-storage', drive: 'nosuch', id: 'st' }) },
      { send: exec('device_add', { driver: 'usb-tablet', bus: 'nosuch.0' }) },
      { send: exec('device_add', { driver: 'usb-tablet' }) },
      { send: exec('device_add', { driver: 'usb-tablet', id: 'st' }) },
      { send: exec('qom-list', { path: '/machine/peripheral-anon' }) },
      { send: exec('qom-list', { path: '/machine/peripheral' }) },
    ],
  },
  {
    name: 'block graph: file + qcow2 nodes over a qemu-img image, refusals, deletion order',
    setup: { machine: 'none', prepare: qcow2('disk.qcow2') },
    normalize: [[/"actual-size": \d+/g, '"actual-size": N']],
    steps: [
      NEGOTIATE,
      {
        send: exec('blockdev-add', {
          driver: 'file',
          filename: '$DIR/missing.img',
          'node-name': 'm',
        }),
      },
      ...qcow2Node('disk0', 'disk.qcow2').map((send) => ({ send })),
      { send: exec('query-named-block-nodes') },
      { send: exec('blockdev-add', { driver: 'qcow2', file: 'nope', 'node-name': 'x' }) },
      { send: exec('blockdev-del', { 'node-name': 'disk0-file' }) },
      { send: exec('blockdev-add', { driver: 'raw', file: 'disk0-file', 'node-name': 'r' }) },
      { send: exec('blockdev-del', { 'node-name': 'disk0' }) },
      { send: exec('blockdev-del', { 'node-name': 'disk0-file' }) },
      { send: exec('query-named-block-nodes') },
    ],
  },
  {
    name: 'block graph: inline children get generated names; external snapshot with blockdev-snapshot-sync',
    setup: { machine: 'none', prepare: qcow2('base.qcow2') },
    normalize: [[/"actual-size": \d+/g, '"actual-size": N']],
    steps: [
      NEGOTIATE,
      {
        send: exec('blockdev-add', {
          driver: 'qcow2',
          'node-name': 'base',
          file: { driver: 'file', filename: '$DIR/base.qcow2' },
        }),
      },
      { send: exec('query-named-block-nodes', { flat: true }) },
      {
        send: exec('blockdev-snapshot-sync', {
          'node-name': 'base',
          'snapshot-file': '$DIR/overlay.qcow2',
          'snapshot-node-name': 'ovl',
          format: 'qcow2',
        }),
      },
      { send: exec('query-named-block-nodes') },
      {
        send: exec('blockdev-snapshot-sync', {
          'node-name': 'base',
          'snapshot-file': '$DIR/o2.qcow2',
        }),
      },
      {
        send: exec('blockdev-snapshot-sync', {
          'node-name': 'ovl',
          'snapshot-file': '$DIR/o3.qcow2',
          'snapshot-node-name': 'ovl',
        }),
      },
      { send: exec('blockdev-snapshot', { node: 'nope', overlay: 'ovl' }) },
    ],
  },
  {
    name: 'transaction: blockdev-snapshot of a node onto an overlay added with backing null; abort rolls back',
    setup: {
      machine: 'none',
      prepare: (dir, binary) => {
        qcow2('base.qcow2')(dir, binary);
        qcow2('ovl.qcow2')(dir, binary);
        qcow2('ovl2.qcow2')(dir, binary);
      },
    },
    normalize: [[/"actual-size": \d+/g, '"actual-size": N']],
    steps: [
      NEGOTIATE,
      ...qcow2Node('base', 'base.qcow2').map((send) => ({ send })),
      {
        send: exec('blockdev-add', {
          driver: 'file',
          filename: '$DIR/ovl.qcow2',
          'node-name': 'ovl-file',
        }),
      },
      {
        send: exec('blockdev-add', {
          driver: 'qcow2',
          file: 'ovl-file',
          'node-name': 'ovl',
          backing: null,
        }),
      },
      {
        send: exec('blockdev-add', {
          driver: 'file',
          filename: '$DIR/ovl2.qcow2',
          'node-name': 'ovl2-file',
        }),
      },
      {
        send: exec('blockdev-add', {
          driver: 'qcow2',
          file: 'ovl2-file',
          'node-name': 'ovl2',
          backing: null,
        }),
      },
      {
        send: exec('transaction', {
          actions: [
            { type: 'blockdev-snapshot', data: { node: 'base', overlay: 'ovl2' } },
            { type: 'abort', data: {} },
          ],
        }),
      },
      {
        send: exec('transaction', {
          actions: [{ type: 'blockdev-snapshot', data: { node: 'base', overlay: 'ovl' } }],
        }),
      },
      { send: exec('query-named-block-nodes') },
      { send: exec('blockdev-snapshot', { node: 'ovl', overlay: 'ovl' }) },
      { send: exec('blockdev-del', { 'node-name': 'base' }) },
    ],
  },
  {
    name: 'jobs: blockdev-create file and qcow2, JOB_STATUS_CHANGE sequence, query-jobs, job-dismiss',
    setup: { machine: 'none' },
    normalize: [[/"actual-size": \d+/g, '"actual-size": N']],
    steps: [
      NEGOTIATE,
      {
        send: exec('blockdev-create', {
          'job-id': 'c1',
          options: { driver: 'file', filename: '$DIR/new.qcow2', size: 0 },
        }),
        until: ['"concluded"'],
      },
      { send: exec('query-jobs') },
      {
        send: exec('blockdev-create', {
          'job-id': 'c1',
          options: { driver: 'file', filename: '$DIR/x', size: 0 },
        }),
      },
      { send: exec('job-dismiss', { id: 'c1' }), until: ['"null"'] },
      { send: exec('job-dismiss', { id: 'c1' }) },
      {
        send: exec('blockdev-add', {
          driver: 'file',
          filename: '$DIR/new.qcow2',
          'node-name': 'f',
        }),
      },
      {
        send: exec('blockdev-create', {
          'job-id': 'c2',
          options: { driver: 'qcow2', file: 'f', size: 16777216 },
        }),
        until: ['"concluded"'],
      },
      { send: exec('query-jobs') },
      { send: exec('job-dismiss', { id: 'c2' }), until: ['"null"'] },
      { send: exec('blockdev-add', { driver: 'qcow2', file: 'f', 'node-name': 'q' }) },
      { send: exec('query-named-block-nodes') },
      {
        send: exec('blockdev-create', {
          'job-id': '1bad',
          options: { driver: 'file', filename: '$DIR/y', size: 0 },
        }),
      },
    ],
  },
  {
    name: 'jobs: snapshot-save, a failing snapshot-load (missing tag), snapshot-delete of a missing tag',
    setup: { machine: 'none', prepare: qcow2('disk.qcow2') },
    normalize: SNAPSHOT_VOLATILE,
    steps: [
      NEGOTIATE,
      ...qcow2Node('disk0', 'disk.qcow2').map((send) => ({ send })),
      {
        send: exec('snapshot-save', {
          'job-id': 's1',
          tag: 'snap1',
          vmstate: 'disk0',
          devices: ['disk0'],
        }),
        until: ['"concluded"'],
      },
      { send: exec('query-jobs') },
      { send: exec('job-dismiss', { id: 's1' }), until: ['"null"'] },
      {
        send: exec('snapshot-load', {
          'job-id': 's2',
          tag: 'nope',
          vmstate: 'disk0',
          devices: ['disk0'],
        }),
        until: ['"concluded"'],
      },
      { send: exec('query-jobs') },
      { send: exec('query-status') },
      { send: exec('job-dismiss', { id: 's2' }), until: ['"null"'] },
      {
        send: exec('snapshot-delete', { 'job-id': 's3', tag: 'nope', devices: ['disk0'] }),
        until: ['"concluded"'],
      },
      { send: exec('query-jobs') },
      { send: exec('job-dismiss', { id: 's3' }), until: ['"null"'] },
      { send: exec('query-named-block-nodes', { flat: true }) },
    ],
  },
  {
    name: 'jobs: snapshot-save errors (existing tag, raw node, unknown node, no devices, vmstate outside devices)',
    setup: {
      machine: 'none',
      prepare: (dir, binary) => {
        qcow2('disk.qcow2')(dir, binary);
        image('raw', 'raw.img', '1M')(dir, binary);
      },
    },
    normalize: SNAPSHOT_VOLATILE,
    steps: [
      NEGOTIATE,
      { send: exec('stop'), until: ['STOP'] },
      ...qcow2Node('disk0', 'disk.qcow2').map((send) => ({ send })),
      {
        send: exec('blockdev-add', {
          driver: 'file',
          filename: '$DIR/raw.img',
          'node-name': 'raw1-file',
        }),
      },
      { send: exec('blockdev-add', { driver: 'raw', file: 'raw1-file', 'node-name': 'raw1' }) },
      ...(
        [
          ['a', { tag: 't', vmstate: 'disk0', devices: ['disk0'] }],
          ['b', { tag: 't', vmstate: 'disk0', devices: ['disk0'] }],
          ['c', { tag: 'u', vmstate: 'disk0', devices: ['disk0', 'raw1'] }],
          ['d', { tag: 'u', vmstate: 'nonode', devices: ['nonode'] }],
          ['e', { tag: 'u', vmstate: 'disk0', devices: [] }],
          ['f', { tag: 'u', vmstate: 'raw1', devices: ['disk0'] }],
        ] as const
      ).flatMap(([job, args]): Step[] => [
        { send: exec('snapshot-save', { 'job-id': job, ...args }), until: ['"concluded"'] },
        { send: exec('query-jobs') },
        { send: exec('job-dismiss', { id: job }), until: ['"null"'] },
      ]),
      { send: hmp('savevm x') },
    ],
  },
  {
    name: 'HMP savevm / info snapshots / loadvm / delvm on a qcow2 node, savevm overwriting',
    setup: { machine: 'none', prepare: qcow2('disk.qcow2') },
    normalize: SNAPSHOT_VOLATILE,
    steps: [
      NEGOTIATE,
      ...qcow2Node('disk0', 'disk.qcow2').map((send) => ({ send })),
      { send: hmp('info snapshots') },
      { send: hmp('savevm snapA'), until: ['RESUME'] },
      { send: hmp('info snapshots') },
      { send: hmp('savevm snapA'), until: ['RESUME'] },
      { send: hmp('savevm snapB'), until: ['RESUME'] },
      { send: hmp('info snapshots') },
      { send: exec('stop'), until: ['STOP'] },
      { send: hmp('loadvm snapA') },
      { send: hmp('loadvm nope') },
      { send: exec('query-status') },
      { send: hmp('delvm nope') },
      { send: hmp('delvm snapA') },
      { send: hmp('info snapshots') },
      { send: exec('query-named-block-nodes', { flat: true }) },
    ],
  },
  {
    name: 'devices: device_add needs a bus, USB hotplug, qom-list /machine/peripheral, device_del with DEVICE_DELETED',
    setup: {
      machine: 'pc',
      paused: true,
      qemuArgs: () => ['-device', 'qemu-xhci,id=usb'],
      fake: () => ({ device: [{ driver: 'qemu-xhci', id: 'usb' }] }),
    },
    steps: [
      NEGOTIATE,
      { send: exec('qom-list', { path: '/machine/peripheral' }) },
      { send: exec('device_add', { driver: 'nosuch' }) },
      { send: exec('device_add', { driver: 5 }) },
      { send: exec('device_add', { driver: 'usb-tablet', id: 'tab1' }) },
      { send: exec('device_add', { driver: 'usb-tablet', id: 'tab1' }) },
      { send: exec('device_add', { driver: 'usb-kbd', id: 'kbd1' }) },
      { send: exec('device_add', { driver: 'usb-mouse', id: 'mouse1' }) },
      { send: exec('device_add', { driver: 'virtio-net-pci', id: 'net1' }) },
      { send: exec('qom-list', { path: '/machine/peripheral' }) },
      { send: exec('device_del', { id: 'kbd1' }), until: ['DEVICE_DELETED'] },
      { send: exec('device_del', { id: 'kbd1' }) },
      { send: exec('qom-list', { path: '/machine/peripheral' }) },
      { send: exec('device_add', { driver: 'ide-hd', id: 'd1', drive: 'x' }) },
      { send: exec('qom-list', { path: '/machine/nope' }) },
    ],
  },
  {
    name: 'block devices: virtio-blk-pci on a qcow2 node, query-block, nodes in use, non-qcow2 images',
    setup: {
      machine: 'pc',
      paused: true,
      prepare: (dir, binary) => {
        qcow2('disk.qcow2')(dir, binary);
        image('raw', 'raw.img', '1M')(dir, binary);
      },
    },
    normalize: [[/"actual-size": \d+/g, '"actual-size": N']],
    steps: [
      NEGOTIATE,
      ...qcow2Node('disk0', 'disk.qcow2').map((send) => ({ send })),
      {
        send: exec('blockdev-add', {
          driver: 'file',
          filename: '$DIR/raw.img',
          'node-name': 'raw-file',
        }),
      },
      { send: exec('blockdev-add', { driver: 'qcow2', file: 'raw-file', 'node-name': 'notq' }) },
      { send: exec('device_add', { driver: 'virtio-blk-pci', id: 'vd0', drive: 'nope' }) },
      { send: exec('device_add', { driver: 'virtio-blk-pci', id: 'vd0', drive: 'disk0' }) },
      { send: exec('query-block') },
      { send: exec('blockdev-del', { 'node-name': 'disk0' }) },
      { send: exec('qom-list', { path: '/machine/peripheral' }) },
    ],
  },
  {
    name: 'jobs: verbs refused in the wrong state, unknown jobs',
    setup: { machine: 'none' },
    steps: [
      NEGOTIATE,
      {
        send: exec('blockdev-create', {
          'job-id': 'c1',
          options: { driver: 'file', filename: '$DIR/a', size: 0 },
        }),
        until: ['"concluded"'],
      },
      { send: exec('job-cancel', { id: 'c1' }) },
      { send: exec('job-finalize', { id: 'c1' }) },
      { send: exec('job-complete', { id: 'c1' }) },
      { send: exec('job-dismiss', { id: 'c2' }) },
      { send: exec('job-cancel', { id: 'c2' }) },
      { send: exec('job-dismiss', { id: 'c1' }), until: ['"null"'] },
      { send: exec('query-jobs') },
    ],
  },
  {
    name: 'devices on -machine none: no bus for anything',
    setup: { machine: 'none' },
    steps: [
      NEGOTIATE,
      { send: exec('device_add', { driver: 'virtio-net-pci', id: 'n1' }) },
      { send: exec('device_add', { driver: 'usb-tablet', id: 't1' }) },
      { send: exec('device_del', { id: 'nosuch' }) },
      { send: exec('qom-list', { path: '/machine/peripheral' }) },
    ],
  },
  {
    name: 'migration capabilities and parameters: defaults, setting, errors',
    setup: { machine: 'none' },
    steps: [
      NEGOTIATE,
      { send: exec('query-migrate') },
      { send: exec('query-migrate-capabilities') },
      { send: exec('query-migrate-parameters') },
      {
        send: exec('migrate-set-capabilities', {
          capabilities: [{ capability: 'events', state: true }],
        }),
      },
      {
        send: exec('migrate-set-parameters', {
          'max-bandwidth': 1099511627776,
          'downtime-limit': 100,
        }),
      },
      { send: exec('query-migrate-capabilities') },
      { send: exec('query-migrate-parameters') },
      { send: exec('migrate', { uri: 'file:/tmp/x' }) },
      { send: exec('migrate-incoming', { uri: 'unix:$DIR/in.sock' }) },
    ],
  },
  {
    name: 'migration to a unix socket with events: stream starts with QEVM v3, VM ends in postmigrate',
    setup: { machine: 'none' },
    normalize: MIGRATION_NUMBERS,
    steps: [
      NEGOTIATE,
      { run: (ctx) => startSink(ctx.dir, ctx.state) },
      {
        send: exec('migrate-set-capabilities', {
          capabilities: [{ capability: 'events', state: true }],
        }),
      },
      { send: exec('migrate', { uri: 'unix:$DIR/mig.sock' }), until: ['"completed"'] },
      { run: (ctx) => checkStream(ctx.state) },
      { send: exec('query-migrate') },
      // postmigrate follows MIGRATION completed without an event of its own (see below).
      { send: exec('query-status'), repeatUntil: '"postmigrate"' },
      { send: exec('migrate', { uri: 'unix:$DIR/mig.sock' }) },
      { send: hmp('info status') },
      { send: exec('cont'), until: ['RESUME'] },
      { send: exec('query-status') },
    ],
  },
  {
    name: 'migration without the events capability: no events; failures reported by query-migrate',
    setup: { machine: 'none' },
    normalize: MIGRATION_NUMBERS,
    steps: [
      NEGOTIATE,
      { send: exec('stop'), until: ['STOP'] },
      { send: exec('migrate', { uri: 'unix:$DIR/nobody.sock' }) },
      // QEMU connects in a thread of its own (qio_channel_socket_connect_async) and fails the
      // migration when that task's callback runs in the main loop, after `migrate` replied; with
      // no events to wait for, ask until it has (a fixed 300 ms sleep lost on a loaded machine).
      { send: exec('query-migrate'), repeatUntil: '"status": "failed"' },
      {
        send: exec('migrate-set-capabilities', {
          capabilities: [{ capability: 'events', state: true }],
        }),
      },
      { send: exec('migrate', { uri: 'unix:$DIR/nobody.sock' }), until: ['"failed"'] },
      { send: exec('query-migrate') },
      { run: (ctx) => startSink(ctx.dir, ctx.state) },
      {
        send: exec('migrate-set-capabilities', {
          capabilities: [{ capability: 'events', state: false }],
        }),
      },
      { send: exec('migrate', { uri: 'unix:$DIR/mig.sock' }) },
      {
        run: async (ctx) => {
          await waitStream(ctx.state);
        },
      },
      { run: () => new Promise((r) => setTimeout(r, 200)) },
      { send: exec('query-migrate') },
      { send: exec('query-status') },
    ],
  },
  {
    name: 'incoming migration: -incoming defer, inmigrate, migrate-incoming of a real QEMU -machine none stream',
    setup: { machine: 'none', incoming: 'defer' },
    steps: [
      NEGOTIATE,
      { send: exec('query-status') },
      { send: exec('migrate', { uri: 'unix:$DIR/x.sock' }) },
      {
        send: exec('migrate-set-capabilities', {
          capabilities: [{ capability: 'events', state: true }],
        }),
      },
      { send: exec('stop') },
      { send: exec('cont') },
      { send: exec('migrate-incoming', { uri: 'bogus:/x' }) },
      { send: exec('migrate-incoming', { uri: 'unix:$DIR/in.sock' }), until: ['"setup"'] },
      { send: exec('query-migrate') },
      { run: (ctx) => feedStream(ctx.binary, path.join(ctx.dir, 'in.sock')) },
      // QEMU loads the stream in a coroutine of its main loop and sends `completed` after it
      // started the VM (RESUME first): wait for the event itself before asking (a fixed 200 ms
      // sleep let query-status race the load on a loaded machine).
      { await: ['RESUME', '"completed"'] },
      { send: exec('query-status') },
      { send: exec('query-migrate') },
      { send: exec('migrate-incoming', { uri: 'unix:$DIR/in2.sock' }) },
    ],
  },
  {
    name: 'incoming migration from a missing file: 7.2 has no file: URI, 10.0 fails to open it and stays in setup',
    setup: { machine: 'none', incoming: 'defer' },
    steps: [
      NEGOTIATE,
      {
        send: exec('migrate-set-capabilities', {
          capabilities: [{ capability: 'events', state: true }],
        }),
      },
      { send: exec('migrate-incoming', { uri: 'file:$DIR/missing' }) },
      { send: exec('query-migrate') },
      { send: exec('query-status') },
      { send: exec('migrate-incoming', { uri: 'unix:$DIR/in.sock' }) },
      { send: exec('query-migrate') },
    ],
  },
  {
    name: 'objects: object-add/object-del of iothreads, memory backends and secrets; duplicates, missing, bad ids, in use; qom-list /objects',
    setup: { machine: 'none' },
    normalize: [
      [/"thread-id": \d+/g, '"thread-id": N'],
      [/thread_id=\d+/g, 'thread_id=N'],
    ],
    steps: [
      NEGOTIATE,
      { send: exec('query-iothreads') },
      { send: exec('object-add', { 'qom-type': 'iothread', id: 'io0' }) },
      { send: exec('object-add', { 'qom-type': 'iothread', id: 'io0' }) },
      { send: exec('object-add', { 'qom-type': 'iothread', id: 'io1', 'poll-max-ns': 0 }) },
      { send: exec('query-iothreads') },
      {
        send: exec('object-add', {
          'qom-type': 'secret',
          id: 's0',
          data: 'c2VjcmV0',
          format: 'base64',
        }),
      },
      { send: exec('object-add', { 'qom-type': 'secret', id: 's1' }) },
      {
        send: exec('object-add', {
          'qom-type': 'secret',
          id: 's2',
          data: 'x',
          file: '/nonexistent',
        }),
      },
      { send: exec('object-add', { 'qom-type': 'secret', id: 's3', file: '$DIR/missing.txt' }) },
      { send: exec('object-add', { 'qom-type': 'memory-backend-ram', id: 'm0', size: 1048576 }) },
      { send: exec('object-add', { 'qom-type': 'memory-backend-ram', id: 'm1', size: 0 }) },
      { send: exec('object-add', { 'qom-type': 'memory-backend-ram', id: 'm1' }) },
      {
        send: exec('object-add', {
          'qom-type': 'memory-backend-file',
          id: 'm2',
          size: 1048576,
          'mem-path': '$DIR',
        }),
      },
      {
        send: exec('object-add', {
          'qom-type': 'memory-backend-file',
          id: 'm3',
          size: 1048576,
          'mem-path': '$DIR/nodir/x',
        }),
      },
      { send: exec('object-add', { 'qom-type': 'iothread', id: '1bad' }) },
      { send: exec('object-add', { 'qom-type': 'iothread', id: 'm0' }) },
      { send: exec('qom-list', { path: '/objects' }) },
      { send: exec('object-del', { id: 'io0' }) },
      { send: exec('object-del', { id: 'io0' }) },
      { send: exec('object-del', { id: 'nosuch' }) },
      { send: exec('object-del', { id: 'm0' }) },
      { send: exec('object-del', { id: 'm2' }) },
      { send: exec('object-del', { id: 's0' }) },
      { send: exec('query-iothreads') },
      { send: exec('qom-list', { path: '/objects' }) },
      { send: exec('object-add', { 'qom-type': 'iothread', id: 'io0' }) },
      { send: hmp('info version') },
      { send: hmp('info iothreads') },
    ],
  },
  {
    name: 'objects in use: the machine RAM backend cannot be deleted',
    setup: {
      machine: 'pc',
      paused: true,
      qemuArgs: () => [
        '-object',
        'memory-backend-ram,id=ram0,size=16M',
        '-machine',
        'memory-backend=ram0',
      ],
      fake: () => ({
        object: [{ 'qom-type': 'memory-backend-ram', id: 'ram0', size: 16 * 1024 * 1024 }],
        memoryBackend: 'ram0',
      }),
    },
    steps: [
      NEGOTIATE,
      { send: exec('object-del', { id: 'ram0' }) },
      { send: exec('object-add', { 'qom-type': 'iothread', id: 'ram0' }) },
      { send: exec('qom-list', { path: '/objects' }) },
    ],
  },
  {
    name: 'a command the fake does not model fails like a QEMU command failing (GenericError)',
    setup: { machine: 'none' },
    // Only the text differs: QEMU explains its failure, the fake names itself.
    normalize: [
      [
        /"desc": "(Cannot find device='x' nor node-name='x'|qmpkit fake-qmp does not model '[a-z-]+' \(QEMU \d+\.\d+\.\d+ has it\))"/g,
        '"desc": "FAILED"',
      ],
    ],
    steps: [
      NEGOTIATE,
      { send: exec('drive-mirror', { device: 'x', target: '/t', sync: 'full' }, 7) },
      { send: exec('drive-backup', { device: 'x', target: '/t', sync: 'full' }) },
      { send: exec('drive-backup', { target: '/t', sync: 'full' }, 'checked-first') },
    ],
  },
  {
    name: 'query-commands lists every command in QEMU order',
    setup: { machine: 'none' },
    steps: [NEGOTIATE, { send: exec('query-commands') }],
  },
  {
    name: 'query-qmp-schema is served byte for byte; query-version',
    setup: { machine: 'none' },
    steps: [
      NEGOTIATE,
      { send: exec('query-version', undefined, 'v') },
      { send: exec('query-qmp-schema', undefined, 's') },
    ],
  },
  {
    name: 'tiny guest, run state: powerdown is POWERDOWN only, running or stopped; a stopped reset leaves prelaunch; quit',
    setup: { machine: 'pc', guest: true },
    steps: [
      NEGOTIATE,
      { send: exec('query-status') },
      // The guest has no ACPI-aware OS: nothing follows POWERDOWN (settle lets a SHUTDOWN show).
      { send: exec('system_powerdown'), until: ['POWERDOWN'], settle: 300 },
      { send: exec('query-status') },
      { send: exec('stop'), until: ['STOP'] },
      { send: exec('system_powerdown'), until: ['POWERDOWN'] },
      { send: exec('cont'), until: ['RESUME'], settle: 300 },
      { send: exec('query-status') },
      // Not compared: with the guest running, SeaBIOS answers system_reset with one or two
      // RESETs of its own (guest-reset), varying from run to run; so only a stopped reset here.
      { send: exec('stop'), until: ['STOP'] },
      { send: exec('system_reset'), until: ['host-qmp-system-reset'], settle: 200 },
      { send: exec('query-status') },
      { send: hmp('info status') },
      { send: exec('quit', undefined, 'bye'), until: ['SHUTDOWN'] },
      { expectClose: true },
    ],
  },
  {
    name: 'tiny guest, PCI unplug: the guest acknowledges the ACPI eject, virtio-backend first, anonymous devices, not while stopped',
    setup: { machine: 'pc', guest: true },
    steps: [
      NEGOTIATE,
      { send: exec('device_add', { driver: 'virtio-net-pci', id: 'net1' }) },
      { send: exec('device_del', { id: 'net1' }), until: ['"device": "net1"'] },
      { send: exec('device_del', { id: 'net1' }) },
      { send: exec('device_add', { driver: 'e1000' }) },
      { send: exec('qom-list', { path: '/machine/peripheral-anon' }) },
      {
        send: exec('device_del', { id: '/machine/peripheral-anon/device[1]' }),
        until: ['DEVICE_DELETED'],
      },
      // The guest's boot disk is on IDE, which does not hot-unplug.
      { send: exec('device_del', { id: '/machine/peripheral-anon/device[0]' }) },
      { send: exec('device_add', { driver: 'virtio-serial-pci', id: 'vs' }) },
      { send: exec('device_add', { driver: 'virtserialport', id: 'p1' }) },
      { send: exec('device_del', { id: 'vs' }), until: ['"device": "vs"'] },
      // Stopped: the request is pending until the guest runs again; asking twice is accepted.
      { send: exec('stop'), until: ['STOP'] },
      { send: exec('device_add', { driver: 'virtio-net-pci', id: 'net2' }) },
      { send: exec('device_del', { id: 'net2' }), settle: 300 },
      { send: exec('device_del', { id: 'net2' }) },
      { send: exec('qom-list', { path: '/machine/peripheral' }) },
      { send: exec('cont'), until: ['RESUME', '"device": "net2"'] },
      { send: exec('qom-list', { path: '/machine/peripheral' }) },
    ],
  },
  {
    name: 'tiny guest, USB unplug without the guest: DEVICE_DELETED with and without id; an unplugged qemu-xhci sends none itself',
    setup: {
      machine: 'pc',
      guest: true,
      qemuArgs: () => ['-device', 'qemu-xhci,id=usb'],
      fake: () => ({ device: [{ driver: 'qemu-xhci', id: 'usb' }] }),
    },
    steps: [
      NEGOTIATE,
      { send: exec('device_add', { driver: 'usb-tablet', id: 'tab1' }) },
      { send: exec('device_add', { driver: 'usb-kbd' }) },
      { send: exec('qom-list', { path: '/machine/peripheral-anon' }) },
      { send: exec('device_del', { id: 'tab1' }), until: ['DEVICE_DELETED'] },
      {
        send: exec('device_del', { id: '/machine/peripheral-anon/device[1]' }),
        until: ['DEVICE_DELETED'],
      },
      // USB needs no guest: it unplugs while the VM is stopped too.
      { send: exec('device_add', { driver: 'usb-mouse', id: 'm1' }) },
      { send: exec('stop'), until: ['STOP'] },
      { send: exec('device_del', { id: 'm1' }), until: ['DEVICE_DELETED'] },
      { send: exec('cont'), until: ['RESUME'] },
      // A hot-plugged controller with a child: the child's event, none for the controller.
      { send: exec('device_add', { driver: 'qemu-xhci', id: 'hx' }) },
      { send: exec('device_add', { driver: 'usb-tablet', id: 't2', bus: 'hx.0' }) },
      { send: exec('device_del', { id: 'hx' }), until: ['"device": "t2"'], settle: 300 },
      { send: exec('qom-list', { path: '/machine/peripheral' }) },
      { send: exec('device_del', { id: 'hx' }) },
    ],
  },
  // Block jobs, dirty bitmaps and NBD exports (scenarios-block-jobs.ts).
  ...blockJobScenarios,
  // ---- migration between two peers (two QEMUs, or two fakes) ----------------------------
  {
    name: 'migration between two peers over unix: events on both sides, return-path, the target resumes',
    setup: { machine: 'none', target: { machine: 'none', incoming: 'defer' } },
    normalize: TWO_PEER_NUMBERS,
    steps: [
      NEGOTIATE,
      { ...NEGOTIATE, peer: 'target' },
      { send: exec('query-status'), peer: 'target' },
      { send: exec('migrate-set-capabilities', { capabilities: LIVE_CAPS }), peer: 'target' },
      {
        send: exec('migrate-incoming', { uri: 'unix:$DIR/mig.sock' }),
        peer: 'target',
        until: ['"setup"'],
      },
      { send: exec('migrate-set-capabilities', { capabilities: LIVE_CAPS }) },
      {
        send: exec('migrate', { uri: 'unix:$DIR/mig.sock' }),
        replyLast: true,
        until: ['"completed"'],
      },
      { await: ['RESUME', '"completed"'], peer: 'target' },
      { send: exec('query-migrate') },
      // postmigrate follows MIGRATION completed without an event of its own (see below).
      { send: exec('query-status'), repeatUntil: '"postmigrate"' },
      { send: exec('query-migrate'), peer: 'target' },
      { send: exec('query-status'), peer: 'target' },
    ],
  },
  {
    name: 'migration between two peers over tcp from a stopped source with pause-before-switchover: migrate-continue, the target stays paused',
    setup: { machine: 'none', target: { machine: 'none', incoming: 'defer' } },
    normalize: TWO_PEER_NUMBERS,
    steps: [
      NEGOTIATE,
      { ...NEGOTIATE, peer: 'target' },
      { send: exec('migrate-set-capabilities', { capabilities: LIVE_CAPS }), peer: 'target' },
      {
        send: exec('migrate-incoming', { uri: 'tcp:127.0.0.1:0' }),
        peer: 'target',
        until: ['"setup"'],
      },
      { send: exec('query-migrate'), peer: 'target' },
      { run: (ctx) => readPort(ctx) },
      { send: exec('stop'), until: ['STOP'] },
      {
        send: exec('migrate-set-capabilities', {
          capabilities: [...LIVE_CAPS, { capability: 'pause-before-switchover', state: true }],
        }),
      },
      { send: exec('migrate-continue', { state: 'pre-switchover' }) },
      {
        send: exec('migrate', { uri: 'tcp:127.0.0.1:$PORT' }),
        replyLast: true,
        until: ['"pre-switchover"'],
      },
      { send: exec('query-migrate') },
      { send: exec('query-status') },
      { send: exec('migrate-continue', { state: 'active' }) },
      {
        send: exec('migrate-continue', { state: 'pre-switchover' }),
        replyLast: true,
        until: ['"completed"'],
      },
      { await: ['"completed"'], peer: 'target' },
      // The source's MIGRATION completed comes before its run state leaves finish-migrate
      // (QEMU sets postmigrate afterwards, when the migration thread finishes; no event marks
      // it for a source that was already stopped): ask until it says postmigrate. 10.0 answered
      // finish-migrate once, in the lead's run at stop 16.
      { send: exec('query-status'), repeatUntil: '"postmigrate"' },
      { send: exec('query-status'), peer: 'target' },
      { send: exec('cont'), peer: 'target', until: ['RESUME'] },
    ],
  },
  {
    name: 'migration between two peers cancelled at pre-switchover: the source runs again, the target fails and exits',
    setup: { machine: 'none', target: { machine: 'none', incoming: 'defer' } },
    normalize: TWO_PEER_NUMBERS,
    // QEMU's cancel posts the semaphore the migration thread waits on at pre-switchover and only
    // then moves the state to cancelling; when the woken thread wins, it reports `device` first
    // and the cancel retries from there (seen once, in stop 14's CI run on 7.2). Both orders end
    // cancelled with the source running.
    racyLines: [/"event": "MIGRATION", "data": \{"status": "device"\}/],
    steps: [
      NEGOTIATE,
      { ...NEGOTIATE, peer: 'target' },
      { send: exec('migrate-set-capabilities', { capabilities: LIVE_CAPS }), peer: 'target' },
      {
        send: exec('migrate-incoming', { uri: 'unix:$DIR/mig.sock' }),
        peer: 'target',
        until: ['"setup"'],
      },
      {
        send: exec('migrate-set-capabilities', {
          capabilities: [...LIVE_CAPS, { capability: 'pause-before-switchover', state: true }],
        }),
      },
      {
        send: exec('migrate', { uri: 'unix:$DIR/mig.sock' }),
        replyLast: true,
        until: ['"pre-switchover"'],
      },
      { send: exec('query-status') },
      { send: exec('migrate_cancel'), replyLast: true, until: ['RESUME', '"cancelled"'] },
      { await: ['"failed"'], peer: 'target' },
      { expectClose: true, peer: 'target' },
      // 10.0's return path records the target's end as the cancelled migration's error-desc.
      { send: exec('query-migrate') },
      { send: exec('query-status') },
      { send: exec('migrate_cancel') },
    ],
  },
  {
    name: 'migration between two peers into another machine type: the target gives up on the configuration section, the source fails and its guest runs on',
    setup: {
      machine: 'pc',
      fake: () => ({ ramBytes: 16 * 1024 * 1024 }),
      target: {
        machine: 'pc',
        incoming: 'defer',
        qemuArgs: () => ['-machine', 'pc-i440fx-7.1'],
        fake: () => ({ machineType: 'pc-i440fx-7.1' }),
      },
    },
    normalize: [
      ...TWO_PEER_NUMBERS,
      // Which socket call notices the target's end first varies from run to run (7.2: Broken
      // pipe or Bad file descriptor; 10.0: Connection reset by peer or a channel error, and
      // now and then "ram_save_setup failed: Input/output error" when the target has already
      // closed before the source flushes the end of its RAM setup section — seen in CI).
      [
        /"error-desc": "((Unable to (write to|read from) socket|Channel error): [^"]*|ram_save_setup failed: [^"]*)"/g,
        '"error-desc": "SOCKET ERROR"',
      ],
    ],
    steps: [
      NEGOTIATE,
      { ...NEGOTIATE, peer: 'target' },
      { send: exec('migrate-set-capabilities', { capabilities: LIVE_CAPS }), peer: 'target' },
      {
        send: exec('migrate-incoming', { uri: 'unix:$DIR/mig.sock' }),
        peer: 'target',
        until: ['"setup"'],
      },
      { send: exec('migrate-set-capabilities', { capabilities: LIVE_CAPS }) },
      // 1 byte/s: the source cannot finish the RAM before the target has read the
      // configuration section (which comes first), so it fails while still active.
      { send: exec('migrate-set-parameters', { 'max-bandwidth': 1 }) },
      {
        send: exec('migrate', { uri: 'unix:$DIR/mig.sock' }),
        replyLast: true,
        until: ['"failed"'],
      },
      { await: ['"failed"'], peer: 'target' },
      { expectClose: true, peer: 'target' },
      { send: exec('query-migrate') },
      { send: exec('query-status') },
    ],
  },
  // qemu-storage-daemon against the fake's storage-daemon personality (scenarios-storage-daemon.ts).
  ...storageDaemonScenarios,
];

// ---- helpers for migration scenarios ---------------------------------------------------

/** Reads the port of the target's last `socket-address` (query-migrate) into `state.port`. */
function readPort(ctx: StepContext): void {
  const ports = [
    ...ctx
      .lines('target')
      .join('\n')
      .matchAll(/"port": "(\d+)"/g),
  ];
  const port = ports.at(-1)?.[1];
  if (port === undefined) throw new Error('the target reported no listening port');
  ctx.state.set('port', port);
}

function startSink(dir: string, state: Map<string, unknown>): Promise<void> {
  const file = path.join(dir, 'mig.sock');
  const chunks: Buffer[] = [];
  let received: (data: Buffer) => void = () => {};
  state.set(
    'stream',
    new Promise<Buffer>((resolve) => {
      received = resolve;
    }),
  );
  const server = net.createServer((socket) => {
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('end', () => {
      server.close();
      received(Buffer.concat(chunks));
    });
  });
  // Ready once the socket accepts connections (a fixed 20 ms sleep raced the bind under load).
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(file, resolve);
  });
}

async function waitStream(state: Map<string, unknown>): Promise<Buffer> {
  return (await state.get('stream')) as Buffer;
}

async function checkStream(state: Map<string, unknown>): Promise<void> {
  const data = await waitStream(state);
  if (data.toString('latin1', 0, 4) !== 'QEVM' || data.readUInt32BE(4) !== 3)
    throw new Error(
      `migration stream does not start with QEVM v3: ${data.subarray(0, 8).toString('hex')}`,
    );
}

const savedStreams = new Map<string, Promise<Buffer>>();

/**
 * A migration stream from a real QEMU `-machine none` (running) of `binary`, made once per
 * binary and run: both peers load what a real source of that version sends.
 */
function realStream(binary: QemuBinary): Promise<Buffer> {
  const made = async () => {
    const tmp = privateTempDir('qmpkit-stream-');
    const fds = new InheritedFds(['ignore', 'ignore', 'ignore']);
    const monitor = fds.socketpair();
    const child = spawnQemu(
      ['-machine', 'none', '-nodefaults', '-display', 'none', '-accel', 'tcg'].concat(
        monitor.monitorArgs(),
      ),
      { binary, stdio: fds.stdio },
    );
    try {
      const state = new Map<string, unknown>();
      await startSink(tmp.dir, state);
      const qmp = await connect(monitor.address(child));
      await qmp.execute('migrate', { uri: `unix:${path.join(tmp.dir, 'mig.sock')}` });
      const data = await waitStream(state);
      await qmp.close();
      return data;
    } finally {
      await killQemu(child);
      tmp.remove();
    }
  };
  let stream = savedStreams.get(binary.id);
  if (stream === undefined) {
    stream = made();
    savedStreams.set(binary.id, stream);
  }
  return stream;
}

async function feedStream(binary: QemuBinary, socketPath: string): Promise<void> {
  const data = await realStream(binary);
  await new Promise<void>((resolve, reject) => {
    const s = net.connect(socketPath, () => s.end(data, () => resolve()));
    s.on('error', reject);
  });
}
