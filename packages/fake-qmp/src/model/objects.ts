/**
 * User-creatable QOM objects under `/objects`: `object-add` / `object-del` for iothreads,
 * memory backends (ram, file) and secrets, `query-iothreads`, `qom-list /objects` and HMP
 * `info iothreads`. Other object types are refused with a GenericError naming the fake.
 * Errors, their order and the listing order are QEMU 7.2's (contract scenario "objects").
 */
import { qmpError } from '../errors.js';
import { dirname, hostPid } from '../platform/runtime.js';
import { GHashTableOrder } from './ghash.js';
import { type HandlerTable, handler, idWellformed, type ModelHost } from './host.js';

export interface QomObject {
  readonly id: string;
  readonly type: string;
  readonly props: Readonly<Record<string, unknown>>;
  /** What keeps the object from being deleted (e.g. the machine's RAM), if anything. */
  usedBy: string | undefined;
  /** Iothreads: a thread id to report (a stand-in; QEMU reports a host TID). */
  readonly threadId: number;
}

const MODELLED = new Set(['iothread', 'memory-backend-ram', 'memory-backend-file', 'secret']);

export class Objects {
  private readonly objects = new Map<string, QomObject>();
  /** The `/objects` container's properties, in GLib hash order. */
  private readonly container = new GHashTableOrder();
  private nextThread = 1;

  constructor(private readonly host: ModelHost) {}

  find(id: string): QomObject | undefined {
    return this.objects.get(id);
  }

  /** `object-add` (also used for objects given at start, like `-object`). */
  add(args: Record<string, unknown>): QomObject {
    const type = String(args['qom-type']);
    const id = String(args.id);
    if (!idWellformed(id)) throw qmpError("Parameter 'id' expects an identifier");
    if (!MODELLED.has(type))
      throw qmpError(`qmpkit fake-qmp does not model objects of type '${type}'`);
    const { 'qom-type': _type, id: _id, ...props } = args;
    // QEMU sets the properties, then completes the object, then adds it to /objects: a
    // property or completion error comes before a duplicate id.
    this.check(type, props);
    if (this.objects.has(id))
      throw qmpError(`attempt to add duplicate property '${id}' to object (type 'container')`);
    const object: QomObject = {
      id,
      type,
      props,
      usedBy: undefined,
      threadId: type === 'iothread' ? hostPid + this.nextThread++ : 0,
    };
    this.objects.set(id, object);
    this.container.insert(id);
    return object;
  }

  private check(type: string, props: Record<string, unknown>): void {
    const storage = this.host.storage;
    if (type === 'memory-backend-ram' || type === 'memory-backend-file') {
      const size = props.size;
      if (size === 0) throw qmpError(`property 'size' of ${type} doesn't take value '0'`);
      if (size === undefined) throw qmpError("can't create backend with size 0");
      if (type === 'memory-backend-file' && storage.kind === 'host') {
        const memPath = String(props['mem-path']);
        // A directory gets a temporary file; a path names the file itself (its directory
        // must exist). The fake creates nothing.
        if (!storage.stat(memPath) && !storage.stat(dirname(memPath)))
          throw qmpError(
            `can't open backing store ${memPath} for guest RAM: No such file or directory`,
          );
      }
      return;
    }
    if (type === 'secret') {
      const hasData = props.data !== undefined;
      const hasFile = props.file !== undefined;
      if (hasData && hasFile) throw qmpError("'file' and 'data' are mutually exclusive");
      if (!hasData && !hasFile) throw qmpError("Either 'file' or 'data' must be provided");
      if (hasFile && storage.kind === 'host') {
        const file = String(props.file);
        if (!storage.stat(file))
          throw qmpError(
            `Unable to read ${file}: Failed to open file \u201C${file}\u201D: No such file or directory`,
          );
      }
    }
  }

  /** `object-del`. */
  del(id: string): void {
    const object = this.objects.get(id);
    if (!object) throw qmpError(`object '${id}' not found`);
    if (object.usedBy !== undefined) throw qmpError(`object '${id}' is in use, can not be deleted`);
    this.objects.delete(id);
    this.container.remove(id);
  }

  private inOrder(): QomObject[] {
    // QEMU walks the container's hash table; qom-list prepends, so it shows the reverse.
    return this.container.keysInOrder().map((id) => this.objects.get(id)!);
  }

  private iothreadInfo(o: QomObject): Record<string, unknown> {
    return {
      id: o.id,
      'thread-id': o.threadId,
      'poll-max-ns': o.props['poll-max-ns'] ?? 32768,
      'poll-grow': o.props['poll-grow'] ?? 0,
      'poll-shrink': o.props['poll-shrink'] ?? 0,
      'aio-max-batch': o.props['aio-max-batch'] ?? 0,
    };
  }

  /** HMP `info iothreads`. */
  hmpInfoIothreads(): string {
    return this.inOrder()
      .filter((o) => o.type === 'iothread')
      .map((o) => {
        const i = this.iothreadInfo(o);
        return `${o.id}:\r\n  thread_id=${o.threadId}\r\n  poll-max-ns=${String(i['poll-max-ns'])}\r\n  poll-grow=${String(i['poll-grow'])}\r\n  poll-shrink=${String(i['poll-shrink'])}\r\n  aio-max-batch=${String(i['aio-max-batch'])}\r\n`;
      })
      .join('');
  }

  /** `qom-list /objects`, or undefined for another path. */
  qomList(qomPath: string): Record<string, unknown>[] | undefined {
    if (qomPath !== '/objects') return undefined;
    const children = this.inOrder().map((o) => ({ name: o.id, type: `child<${o.type}>` }));
    return [...children, { name: 'type', type: 'string' }].reverse();
  }

  handlers(table: HandlerTable): void {
    table.set(
      'object-add',
      handler<Record<string, unknown>>((args) => {
        this.add(args);
      }),
    );
    table.set(
      'object-del',
      handler<{ id: string }>((args) => this.del(args.id)),
    );
    table.set('query-iothreads', () =>
      this.inOrder()
        .filter((o) => o.type === 'iothread')
        .map((o) => this.iothreadInfo(o)),
    );
  }
}
