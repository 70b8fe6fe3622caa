/**
 * `-chardev` in QEMU 7.2 takes only the legacy `backend,id=…,key=value` syntax (checked
 * against the binary: a JSON argument is parsed as keys and rejected), and its keys differ
 * from `chardev-add`'s QAPI members (`data.out` → `path`, `addr.data.host` → `host`,
 * `nodelay: true` → `delay=off`, …). This module maps a QAPI `ChardevBackend` to those keys
 * and reports the members 7.2's command line has no key for.
 */
import type { ChardevBackend, SocketAddressLegacy } from '@qmpkit/qapi';
import { formatKeyval } from './keyval.js';
import type { Scalar } from './model.js';

export interface CliUnsupported {
  /** Member path inside the backend, e.g. `data.in`, `data.addr.data.keep-alive`. */
  readonly field: string;
  readonly reason: string;
}

export type ChardevCliResult =
  | { readonly ok: true; readonly text: string }
  | { readonly ok: false; readonly unsupported: readonly CliUnsupported[] };

type Pairs = Array<[string, Scalar | undefined]>;

function commonPairs(data: { logfile?: string; logappend?: boolean }): Pairs {
  return [
    ['logfile', data.logfile],
    ['logappend', data.logappend],
  ];
}

/** Members not listed in `known` are reported as unsupported (`prefix` + name). */
function checkKnown(
  data: object,
  known: readonly string[],
  prefix: string,
  out: CliUnsupported[],
  backend: string,
): void {
  for (const [key, value] of Object.entries(data)) {
    if (value === undefined || known.includes(key)) continue;
    out.push({
      field: `${prefix}${key}`,
      reason: `has no -chardev ${backend} option in QEMU 7.2`,
    });
  }
}

function socketAddressPairs(
  addr: SocketAddressLegacy,
  prefix: string,
  out: CliUnsupported[],
  forUdp: 'remote' | 'local' | undefined,
): Pairs {
  switch (addr.type) {
    case 'inet': {
      const d = addr.data;
      checkKnown(d, ['host', 'port', 'to', 'ipv4', 'ipv6'], `${prefix}data.`, out, 'socket');
      if (forUdp === 'local') {
        return [
          ['localaddr', d.host],
          ['localport', d.port],
        ];
      }
      return [
        ['host', d.host],
        ['port', d.port],
        ['to', d.to],
        ['ipv4', d.ipv4],
        ['ipv6', d.ipv6],
      ];
    }
    case 'unix':
      if (forUdp !== undefined) break;
      return [
        ['path', addr.data.path],
        ['abstract', addr.data.abstract],
        ['tight', addr.data.tight],
      ];
    case 'fd':
      if (forUdp !== undefined) break;
      return [['fd', addr.data.str]];
    case 'vsock':
      break;
  }
  out.push({
    field: `${prefix}type`,
    reason: `'${addr.type}' addresses cannot be written on QEMU 7.2's -chardev ${forUdp === undefined ? 'socket' : 'udp'} command line`,
  });
  return [];
}

/**
 * The `-chardev` argument for a chardev, e.g. `socket,id=qmp0,path=/run/q,,1.sock,server=on`.
 * `ok: false` lists the members that have no command-line spelling in QEMU 7.2 (such a
 * chardev can still be hot-plugged with `chardev-add`).
 */
export function chardevCli(id: string, backend: ChardevBackend): ChardevCliResult {
  const out: CliUnsupported[] = [];
  let name: string = backend.type;
  let pairs: Pairs = [];
  switch (backend.type) {
    case 'null':
    case 'pty':
    case 'msmouse':
    case 'wctablet':
    case 'braille':
    case 'testdev':
      checkKnown(backend.data, ['logfile', 'logappend'], 'data.', out, backend.type);
      pairs = commonPairs(backend.data);
      break;
    case 'file':
      checkKnown(backend.data, ['logfile', 'logappend', 'out', 'append'], 'data.', out, 'file');
      pairs = [
        ...commonPairs(backend.data),
        ['path', backend.data.out],
        ['append', backend.data.append],
      ];
      break;
    case 'serial':
    case 'parallel':
    case 'pipe':
      checkKnown(backend.data, ['logfile', 'logappend', 'device'], 'data.', out, backend.type);
      pairs = [...commonPairs(backend.data), ['path', backend.data.device]];
      break;
    case 'socket': {
      const d = backend.data;
      checkKnown(
        d,
        [
          'logfile',
          'logappend',
          'addr',
          'tls-creds',
          'tls-authz',
          'server',
          'wait',
          'nodelay',
          'telnet',
          'tn3270',
          'websocket',
          'reconnect',
        ],
        'data.',
        out,
        'socket',
      );
      pairs = [
        ...commonPairs(d),
        ...socketAddressPairs(d.addr, 'data.addr.', out, undefined),
        ['server', d.server],
        ['wait', d.wait],
        // 7.2 spells TCP_NODELAY as the inverse option `delay`.
        ['delay', d.nodelay === undefined ? undefined : !d.nodelay],
        ['telnet', d.telnet],
        ['tn3270', d.tn3270],
        ['websocket', d.websocket],
        ['reconnect', d.reconnect],
        ['tls-creds', d['tls-creds']],
        ['tls-authz', d['tls-authz']],
      ];
      break;
    }
    case 'udp': {
      const d = backend.data;
      checkKnown(d, ['logfile', 'logappend', 'remote', 'local'], 'data.', out, 'udp');
      pairs = [
        ...commonPairs(d),
        ...socketAddressPairs(d.remote, 'data.remote.', out, 'remote'),
        ...(d.local === undefined ? [] : socketAddressPairs(d.local, 'data.local.', out, 'local')),
      ];
      break;
    }
    case 'stdio':
      checkKnown(backend.data, ['logfile', 'logappend', 'signal'], 'data.', out, 'stdio');
      pairs = [...commonPairs(backend.data), ['signal', backend.data.signal]];
      break;
    case 'ringbuf':
    case 'memory':
      checkKnown(backend.data, ['logfile', 'logappend', 'size'], 'data.', out, backend.type);
      pairs = [...commonPairs(backend.data), ['size', backend.data.size]];
      break;
    case 'vc': {
      const d = backend.data;
      checkKnown(
        d,
        ['logfile', 'logappend', 'width', 'height', 'cols', 'rows'],
        'data.',
        out,
        'vc',
      );
      pairs = [
        ...commonPairs(d),
        ['width', d.width],
        ['height', d.height],
        ['cols', d.cols],
        ['rows', d.rows],
      ];
      break;
    }
    case 'spicevmc':
      checkKnown(backend.data, ['logfile', 'logappend', 'type'], 'data.', out, 'spicevmc');
      pairs = [...commonPairs(backend.data), ['name', backend.data.type]];
      break;
    case 'spiceport':
      checkKnown(backend.data, ['logfile', 'logappend', 'fqdn'], 'data.', out, 'spiceport');
      pairs = [...commonPairs(backend.data), ['name', backend.data.fqdn]];
      break;
    case 'qemu-vdagent':
      checkKnown(
        backend.data,
        ['logfile', 'logappend', 'mouse', 'clipboard'],
        'data.',
        out,
        'qemu-vdagent',
      );
      pairs = [
        ...commonPairs(backend.data),
        ['mouse', backend.data.mouse],
        ['clipboard', backend.data.clipboard],
      ];
      break;
    case 'dbus':
      checkKnown(backend.data, ['logfile', 'logappend', 'name'], 'data.', out, 'dbus');
      pairs = [...commonPairs(backend.data), ['name', backend.data.name]];
      break;
    case 'mux':
      out.push({
        field: 'type',
        reason:
          "'mux' is not a -chardev backend on the command line (QEMU spells it mux=on on the muxed backend)",
      });
      break;
    case 'console':
      out.push({ field: 'type', reason: "'console' exists only on Windows hosts" });
      break;
    default: {
      const unknown: { type: string } = backend;
      name = unknown.type;
      out.push({
        field: 'type',
        reason: `'${name}' is not a chardev backend this model can write`,
      });
    }
  }
  if (out.length > 0) return { ok: false, unsupported: out };
  return { ok: true, text: formatKeyval([['id', id], ...pairs], name) };
}
