/**
 * The cpio "newc" format the kernel unpacks as an initramfs (Documentation/driver-api/
 * early-userspace/buffer-format.rst), written from a list of entries. Pure: no I/O, and
 * deterministic (inode numbers in entry order, mtime 0, owner root), so the same tree gives
 * the same bytes. Writing it ourselves also allows device nodes (`/dev/console`) without root.
 */

export type CpioEntry =
  | { readonly type: 'dir'; readonly path: string; readonly mode?: number }
  | {
      readonly type: 'file';
      readonly path: string;
      readonly data: Uint8Array;
      readonly mode?: number;
    }
  | { readonly type: 'symlink'; readonly path: string; readonly target: string }
  | {
      readonly type: 'char';
      readonly path: string;
      readonly major: number;
      readonly minor: number;
      readonly mode?: number;
    };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

const encoder = new TextEncoder();

function hex8(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff)
    throw new RangeError(`cpio field out of range: ${n}`);
  return n.toString(16).padStart(8, '0');
}

const pad4 = (n: number) => (4 - (n % 4)) % 4;

function header(fields: {
  ino: number;
  mode: number;
  nlink: number;
  size: number;
  rdevMajor?: number;
  rdevMinor?: number;
  nameSize: number;
}): string {
  return [
    '070701',
    hex8(fields.ino),
    hex8(fields.mode),
    hex8(0), // uid
    hex8(0), // gid
    hex8(fields.nlink),
    hex8(0), // mtime
    hex8(fields.size),
    hex8(0), // devmajor
    hex8(0), // devminor
    hex8(fields.rdevMajor ?? 0),
    hex8(fields.rdevMinor ?? 0),
    hex8(fields.nameSize),
    hex8(0), // check
  ].join('');
}

/** Entry paths are relative (`init`, `bin/busybox`): no leading `/`, no `..`, no empty part. */
function checkPath(p: string): void {
  if (
    p === '' ||
    p.startsWith('/') ||
    p.split('/').some((part) => part === '' || part === '..' || part === '.')
  )
    throw new RangeError(`not a relative archive path: ${JSON.stringify(p)}`);
}

/** Writes `entries` (parents before children) followed by the trailer, as one buffer. */
export function writeCpio(entries: readonly CpioEntry[]): Uint8Array {
  const chunks: Uint8Array[] = [];
  let length = 0;
  const push = (bytes: Uint8Array) => {
    chunks.push(bytes);
    length += bytes.length;
  };
  const pushEntry = (
    name: string,
    fields: Omit<Parameters<typeof header>[0], 'nameSize'>,
    data: Uint8Array,
  ) => {
    const nameBytes = encoder.encode(`${name}\0`);
    const head = encoder.encode(header({ ...fields, nameSize: nameBytes.length }));
    push(head);
    push(nameBytes);
    push(new Uint8Array(pad4(head.length + nameBytes.length)));
    push(data);
    push(new Uint8Array(pad4(data.length)));
  };
  const seen = new Set<string>();
  let ino = 1;
  for (const entry of entries) {
    checkPath(entry.path);
    if (seen.has(entry.path)) throw new RangeError(`duplicate archive path: ${entry.path}`);
    seen.add(entry.path);
    switch (entry.type) {
      case 'dir':
        pushEntry(
          entry.path,
          { ino: ino++, mode: S_IFDIR | (entry.mode ?? 0o755), nlink: 2, size: 0 },
          new Uint8Array(),
        );
        break;
      case 'file':
        pushEntry(
          entry.path,
          { ino: ino++, mode: S_IFREG | (entry.mode ?? 0o644), nlink: 1, size: entry.data.length },
          entry.data,
        );
        break;
      case 'symlink': {
        const target = encoder.encode(entry.target);
        pushEntry(
          entry.path,
          { ino: ino++, mode: S_IFLNK | 0o777, nlink: 1, size: target.length },
          target,
        );
        break;
      }
      case 'char':
        pushEntry(
          entry.path,
          {
            ino: ino++,
            mode: S_IFCHR | (entry.mode ?? 0o600),
            nlink: 1,
            size: 0,
            rdevMajor: entry.major,
            rdevMinor: entry.minor,
          },
          new Uint8Array(),
        );
        break;
    }
  }
  pushEntry('TRAILER!!!', { ino: 0, mode: 0, nlink: 1, size: 0 }, new Uint8Array());
  const out = new Uint8Array(length);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
