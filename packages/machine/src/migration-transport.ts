/**
 * What a live migration's two sides must agree on beyond the machine: the address (unix socket
 * or TCP), TLS (`tls-creds-x509` objects, one per side, named in the migration parameters) and
 * post-copy (`postcopy-ram` on both sides; it needs userfaultfd on the target's host). Shared by
 * `migrate()` towards an address and `receiveMigration()`; every capability is used only when
 * the running QEMU lists it (`query-migrate-capabilities`).
 */
import { constants } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Commands } from '@qmpkit/qapi';
import { LiveMigrationError } from './errors.js';
import type { Machine } from './machine.js';

type Capability = Commands['migrate-set-capabilities']['args']['capabilities'][number];

/** A migration address as QEMU's URIs spell it: `unix:PATH` or `tcp:HOST:PORT`. */
export type MigrationAddress =
  | { readonly type: 'unix'; readonly path: string }
  | { readonly type: 'tcp'; readonly host: string; readonly port: number };

/**
 * Parses `unix:PATH` or `tcp:HOST:PORT` (`HOST` may be `[v6]`); anything else (`exec:`, `fd:`,
 * `file:`, a bare path) is refused with a `LiveMigrationError` (`bad-address`).
 */
export function parseMigrationAddress(text: string): MigrationAddress {
  if (text.startsWith('unix:') && text.length > 'unix:'.length)
    return { type: 'unix', path: text.slice('unix:'.length) };
  const tcp = /^tcp:(\[[0-9A-Fa-f:.]+\]|[^:[\]]+):(\d{1,5})$/.exec(text);
  if (tcp !== null) {
    const port = Number(tcp[2]);
    const host = tcp[1] ?? '';
    if (port <= 65535)
      return { type: 'tcp', host: host.startsWith('[') ? host.slice(1, -1) : host, port };
  }
  throw new LiveMigrationError(
    'bad-address',
    'starting-target',
    `'${text}' is not a migration address: expected unix:PATH or tcp:HOST:PORT`,
  );
}

/**
 * What `receiveMigration` prints for the source: the migration address, and with a disk copy
 * the port of its NBD server on the same host, as one token (`tcp:HOST:PORT,nbd=NBDPORT`) a
 * user pastes whole. QEMU never sees the `,nbd=` part.
 */
export interface ReceiverAddress {
  readonly migration: MigrationAddress;
  /** The receiver's NBD server (same host as `migration`), when it exports disks. */
  readonly nbdPort?: number;
}

export function parseReceiverAddress(text: string): ReceiverAddress {
  const match = /^(tcp:.*),nbd=(\d{1,5})$/.exec(text);
  if (match === null) return { migration: parseMigrationAddress(text) };
  const nbdPort = Number(match[2]);
  if (nbdPort < 1 || nbdPort > 65535)
    throw new LiveMigrationError(
      'bad-address',
      'starting-target',
      `'${text}': the NBD port ${nbdPort} is out of range`,
    );
  return { migration: parseMigrationAddress(match[1] ?? ''), nbdPort };
}

/** The token `parseReceiverAddress` reads. */
export function receiverAddressText(address: ReceiverAddress): string {
  const uri = addressUri(address.migration);
  return address.nbdPort === undefined ? uri : `${uri},nbd=${address.nbdPort}`;
}

/** The URI QEMU takes for an address. */
export function addressUri(address: MigrationAddress): string {
  if (address.type === 'unix') return `unix:${address.path}`;
  const host = address.host.includes(':') ? `[${address.host}]` : address.host;
  return `tcp:${host}:${address.port}`;
}

/**
 * TLS for the migration stream: a directory in QEMU's `tls-creds-x509` layout. The listening
 * side (the target) needs `ca-cert.pem`, `server-cert.pem`, `server-key.pem`; the connecting
 * side (the source) `ca-cert.pem`, and with `verifyPeer` (the default) also `client-cert.pem`
 * and `client-key.pem`. One directory with all five serves both sides.
 */
export interface MigrationTls {
  readonly dir: string;
  /** The name the source checks the target's certificate against (default: the address' host). */
  readonly hostname?: string;
  /** The target asks for and checks the source's client certificate (default true). */
  readonly verifyPeer?: boolean;
}

/** The object id both sides use for their credentials. */
export const TLS_OBJECT_ID = 'qmpkit-migration-tls';

const TLS_FILES = {
  server: ['ca-cert.pem', 'server-cert.pem', 'server-key.pem'],
  client: ['ca-cert.pem', 'client-cert.pem', 'client-key.pem'],
} as const;

/**
 * Creates the side's `tls-creds-x509` object and returns the `migrate-set-parameters` that
 * use it. Missing files are refused here (`tls`), before QEMU is asked: QEMU itself only
 * complains at the handshake.
 */
export async function addTlsCredentials(
  machine: Machine,
  endpoint: 'server' | 'client',
  tls: MigrationTls,
  hostname: string | undefined,
  phase: string,
): Promise<Commands['migrate-set-parameters']['args']> {
  const dir = path.resolve(tls.dir);
  const verifyPeer = tls.verifyPeer ?? true;
  const needed = endpoint === 'server' || verifyPeer ? TLS_FILES[endpoint] : ['ca-cert.pem'];
  const missing: string[] = [];
  for (const name of needed)
    await access(path.join(dir, name), constants.R_OK).catch(() => missing.push(name));
  if (missing.length > 0)
    throw new LiveMigrationError(
      'tls',
      phase,
      `the TLS directory ${dir} lacks ${missing.join(', ')} (the ${endpoint === 'server' ? 'target' : 'source'} needs ${needed.join(', ')})`,
    );
  try {
    // Replaced when it exists (a second migration of the same QEMU).
    const objects = await machine.qmp.execute('qom-list', { path: '/objects' });
    if (objects.some((o) => o.name === TLS_OBJECT_ID))
      await machine.qmp.execute('object-del', { id: TLS_OBJECT_ID });
    await machine.qmp.execute('object-add', {
      'qom-type': 'tls-creds-x509',
      id: TLS_OBJECT_ID,
      dir,
      endpoint,
      'verify-peer': verifyPeer,
    });
  } catch (error) {
    throw new LiveMigrationError(
      'tls',
      phase,
      `the ${endpoint === 'server' ? 'target' : 'source'} QEMU refused the TLS credentials in ${dir}: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`,
      {},
      { cause: error },
    );
  }
  return {
    'tls-creds': TLS_OBJECT_ID,
    ...(endpoint === 'client' && hostname !== undefined ? { 'tls-hostname': hostname } : {}),
  };
}

/** Removes the side's TLS object (after a migration, so a later one starts clean). */
export async function removeTlsCredentials(machine: Machine): Promise<void> {
  await machine.qmp.execute('migrate-set-parameters', { 'tls-creds': '' });
  await machine.qmp.execute('object-del', { id: TLS_OBJECT_ID });
}

/** Whether post-copy can run on this host, and why not. */
export interface PostcopySupport {
  readonly available: boolean;
  /** What was found: `/dev/userfaultfd`, the sysctl, the process's privileges. */
  readonly reason: string;
}

/**
 * Post-copy needs userfaultfd on the **target's** host: QEMU opens it as the user it runs as.
 * Available when that is root (CAP_SYS_PTRACE), when `vm.unprivileged_userfaultfd` is 1, or
 * when `/dev/userfaultfd` (Linux ≥ 6.1) can be opened for reading and writing. Not Linux: no.
 */
export async function probePostcopy(): Promise<PostcopySupport> {
  return postcopyVerdict({
    platform: process.platform,
    uid: process.getuid?.(),
    sysctl: await readFile('/proc/sys/vm/unprivileged_userfaultfd', 'utf8').then(
      (t) => t.trim(),
      () => undefined,
    ),
    device: await access('/dev/userfaultfd', constants.R_OK | constants.W_OK).then(
      () => true,
      () => false,
    ),
  });
}

/** The rule of `probePostcopy` over the facts it gathered (pure, for tests). */
export function postcopyVerdict(facts: {
  readonly platform: string;
  readonly uid: number | undefined;
  /** `vm.unprivileged_userfaultfd` (absent: a kernel without userfaultfd). */
  readonly sysctl: string | undefined;
  /** `/dev/userfaultfd` can be opened read-write. */
  readonly device: boolean;
}): PostcopySupport {
  if (facts.platform !== 'linux')
    return { available: false, reason: `userfaultfd is Linux-only (this is ${facts.platform})` };
  const said = `uid ${facts.uid ?? '?'}, vm.unprivileged_userfaultfd=${facts.sysctl ?? 'absent'}, /dev/userfaultfd ${facts.device ? 'usable' : 'not usable'}`;
  if (facts.sysctl === undefined && !facts.device)
    return { available: false, reason: `the kernel has no userfaultfd (${said})` };
  if (facts.uid === 0 || facts.sysctl === '1' || facts.device)
    return { available: true, reason: said };
  return {
    available: false,
    reason: `userfaultfd is reserved for privileged processes here (${said}); run QEMU as root, set vm.unprivileged_userfaultfd=1, or grant access to /dev/userfaultfd`,
  };
}

/** Throws `postcopy-unavailable` when post-copy cannot run on this host or in `m`. */
export async function requirePostcopy(
  machine: Machine,
  capabilities: ReadonlySet<string>,
  side: 'source' | 'target',
  phase: string,
): Promise<void> {
  if (!capabilities.has('postcopy-ram'))
    throw new LiveMigrationError(
      'postcopy-unavailable',
      phase,
      `the ${side} QEMU (${machine.qemuVersion.major}.${machine.qemuVersion.minor}) has no postcopy-ram capability`,
    );
  if (side === 'source') return;
  const support = await probePostcopy();
  if (!support.available)
    throw new LiveMigrationError('postcopy-unavailable', phase, support.reason);
}

/** `query-migrate-capabilities` as a set of names. */
export async function capabilitiesOf(machine: Machine): Promise<Set<string>> {
  const list = await machine.qmp.execute('query-migrate-capabilities');
  return new Set(list.map((c) => c.capability));
}

/** The capabilities a side sets: events and return-path always, post-copy when asked. */
export function baseCapabilities(available: ReadonlySet<string>, postcopy: boolean): Capability[] {
  const out: Capability[] = [{ capability: 'events', state: true }];
  if (available.has('return-path')) out.push({ capability: 'return-path', state: true });
  if (postcopy) out.push({ capability: 'postcopy-ram', state: true });
  return out;
}
