/**
 * Version-range typing: a client typed for several QEMU versions (`connect<'6.2' | '7.2'>()`)
 * compiles only what all of them accept; a typed capability check (`supports`) narrows the
 * version set to those that have the command, argument or value — so the narrowed client
 * compiles what those versions accept; `supportsFeature` narrows by a QAPI feature of a command,
 * argument, branch or value. Availability comes from the merged view of
 * `@qmpkit/qapi/merged`, computed by diffing the versions' schemas.
 *
 * Public as `@qmpkit/transport/versions`, apart from the root export: the merged view types
 * every version, so only programs that ask for ranges pay for type-checking it.
 */

import type { DefaultQemuVersion } from '@qmpkit/qapi';
import type {
  ArgumentValueVersions,
  ArgumentVersions,
  CommandsFor,
  CommandVersions,
  EventsFor,
  EventVersions,
  FeatureVersions,
  QemuVersion,
  VersionMaps,
} from '@qmpkit/qapi/merged';
import { featureAvailability } from '@qmpkit/qapi/runtime-v1';
import { QmpUnknownCapabilityError } from '../errors.js';
import type { QmpAddress } from '../transports/address.js';
import { checkKnown, loadAvailability } from './capability.js';
import { type ConnectOptions, openClient, type QmpClient } from './client.js';
import type { SchemaIndex, SchemaQuery, UntypedSchemaQuery } from './schema.js';
import type { ArgsOf, CommandName, DataOf, EventName, HasSubject as OwnSubject } from './types.js';

export type { CommandsFor, EventsFor, QemuVersion } from '@qmpkit/qapi/merged';

/** Commands at least one version of `V` has. */
export type AnyCommandName<V> = {
  [K in keyof CommandVersions]: [Extract<V, CommandVersions[K]>] extends [never] ? never : K;
}[keyof CommandVersions] &
  string;

/** Events at least one version of `V` has. */
export type AnyEventName<V> = {
  [K in keyof EventVersions]: [Extract<V, EventVersions[K]>] extends [never] ? never : K;
}[keyof EventVersions] &
  string;

/** The arguments of command `K` in any version of `V` that has it (the union over them). */
export type ArgsIn<V extends QemuVersion, K> = V extends QemuVersion
  ? K extends keyof VersionMaps[V]['commands']
    ? ArgsOf<VersionMaps[V]['commands'], K>
    : never
  : never;

/**
 * Names `QmpClient.has` accepts: anything the client's maps have and, for a client typed
 * for versions `V`, every command or event that *some* version of `V` has (the question is
 * worth asking exactly when not all of them have it).
 */
export type HasName<C, E, V extends QemuVersion> =
  | CommandName<C>
  | EventName<E>
  | AnyCommandName<V>
  | AnyEventName<V>;

/**
 * What a `has` query about `K` is checked against: for versions `V`, the arguments of `K`
 * in any of them (so members, values and branches only some versions have are accepted);
 * for custom bindings (`V` = `never`), the client's own maps. Commands first, like QEMU.
 */
export type HasSubject<C, E, V extends QemuVersion, K> = [V] extends [never]
  ? K extends CommandName<C>
    ? ArgsOf<C, K>
    : K extends EventName<E>
      ? DataOf<E, K>
      : never
  : SubjectIn<V, K>;

/** The arguments of command `K` (or else the data of event `K`) in any version of `V`. */
type SubjectIn<V extends QemuVersion, K> = V extends QemuVersion
  ? K extends keyof VersionMaps[V]['commands']
    ? ArgsOf<VersionMaps[V]['commands'], K>
    : K extends keyof VersionMaps[V]['events']
      ? DataOf<VersionMaps[V]['events'], K>
      : never
  : never;

/** Arguments of a command: `member`, or `case.member` for a member of one union branch. */
export type ArgumentKey<K> = K extends keyof ArgumentVersions
  ? keyof ArgumentVersions[K] & string
  : never;

type VersionsOfName<K> = K extends keyof CommandVersions
  ? CommandVersions[K]
  : K extends keyof EventVersions
    ? EventVersions[K]
    : never;

type VersionsOfMember<K, M> = [M] extends [never]
  ? QemuVersion
  : K extends keyof ArgumentVersions
    ? M extends keyof ArgumentVersions[K]
      ? ArgumentVersions[K][M]
      : never
    : never;

/** The versions of `V` that have command/event `K` (and argument `M` of it). */
export type NarrowVersions<V, K, M = never> = Extract<
  V,
  VersionsOfName<K> & VersionsOfMember<K, M>
> &
  QemuVersion;

/** A value of an enum-typed argument: `command.member=value`, e.g. `blockdev-add.driver=qcow2`. */
export type ArgumentValueKey = keyof ArgumentValueVersions & string;

/** What `supports` needs of a client: its version set (type level) and its live schema. */
export interface VersionedClient<V extends QemuVersion> {
  readonly qemuVersions?: V;
  schema(): Promise<SchemaIndex>;
}

/**
 * A client typed for the versions `V` (what `connect<V>()` returns): it compiles what every
 * version of `V` accepts, and `has` accepts what *any* of them has.
 */
export interface QmpClientFor<V extends QemuVersion>
  extends QmpClient<CommandsFor<V>, EventsFor<V>, V> {
  has<K extends HasName<CommandsFor<V>, EventsFor<V>, V>>(
    name: K,
    query?: SchemaQuery<HasSubject<CommandsFor<V>, EventsFor<V>, V, K>>,
  ): Promise<boolean>;
  // The base signature, never chosen by a call (the one above accepts more); it makes the
  // interface a QmpClient.
  has<K extends CommandName<CommandsFor<V>> | EventName<EventsFor<V>>>(
    name: K,
    query?: SchemaQuery<OwnSubject<CommandsFor<V>, EventsFor<V>, K>>,
  ): Promise<boolean>;
}

/**
 * Connects to QMP and returns a client typed for a range of QEMU versions (default: the
 * default version of `@qmpkit/qapi`):
 *
 * ```ts
 * const qmp = await connect<'5.2' | '7.2'>('unix:/run/vm/qmp.sock');
 * ```
 * Validation (`validate`) checks against the given `bindings`' tables, else the default
 * version's.
 */
export async function connect<V extends QemuVersion = DefaultQemuVersion & QemuVersion>(
  address: string | QmpAddress,
  options: ConnectOptions<CommandsFor<V>, EventsFor<V>> = {},
): Promise<QmpClientFor<V>> {
  // Same object: `QmpClientFor` only widens what `has` accepts at compile time.
  return (await openClient<CommandsFor<V>, EventsFor<V>, V>(address, options)) as QmpClientFor<V>;
}

/**
 * A typed capability check that narrows a client typed for a range of versions
 * (`connect<'5.2' | '7.2'>()`): resolves to the same client, typed for the versions of the
 * range that have the command or event — and the argument (`'member'`, or `'case.member'`
 * for a member of one union branch) and enum value when given — or `undefined` when the
 * connected QEMU lacks it. Names are checked at compile time against the range's versions.
 *
 * ```ts
 * const qmp = await connect<'5.2' | '7.2'>(address);
 * const jobs = await supports(qmp, 'snapshot-save'); // 6.0+: typed for '7.2'
 * if (jobs) await jobs.runJob('snapshot-save', { tag: 's1', vmstate: 'disk0', devices: ['disk0'] });
 * await supports(qmp, 'blockdev-add', 'nbd.open-timeout'); // 7.0+
 * await supports(qmp, 'blockdev-add', 'driver', 'preallocate'); // 6.0+
 * ```
 */
export async function supports<
  V extends QemuVersion,
  K extends AnyCommandName<V> | AnyEventName<V>,
  M extends ArgumentKey<K> = never,
>(
  qmp: VersionedClient<V>,
  name: K,
  member?: M,
): Promise<QmpClientFor<NarrowVersions<V, K, M>> | undefined> {
  const schema = await qmp.schema();
  // String(): a template literal of the generic K/M makes TypeScript 5.9 relate them to its
  // primitives, which blows up over the merged maps.
  const command = String(name);
  const argument = member === undefined ? undefined : String(member);
  if (!schema.query(command, memberQuery(schema, command, argument))) {
    // "No" — unless nothing known has it, which is a typo (from untyped code).
    checkKnown(schema, await loadAvailability(), { name: command, argument, argumentLive: false });
    return undefined;
  }
  // The same connection, typed for the narrower version set.
  return qmp as unknown as QmpClientFor<NarrowVersions<V, K, M>>;
}

/**
 * `supports` for a value of an enum-typed argument, named `command.member=value`:
 * `await supportsValue(qmp, 'blockdev-add.driver=preallocate')` narrows to the versions that
 * accept that driver (6.0+). A key no known version has does not compile.
 */
export async function supportsValue<V extends QemuVersion, Q extends ArgumentValueKey>(
  qmp: VersionedClient<V>,
  key: Q,
): Promise<QmpClientFor<Extract<V, ArgumentValueVersions[Q]> & QemuVersion> | undefined> {
  const text = String(key);
  const dot = text.indexOf('.');
  const eq = text.lastIndexOf('=');
  if (dot < 0 || eq < dot) throw new TypeError(`'${text}' is not of the form command.member=value`);
  const command = text.slice(0, dot);
  const schema = await qmp.schema();
  const member = text.slice(dot + 1, eq);
  const value = text.slice(eq + 1);
  const query = memberQuery(schema, command, member);
  if (!schema.query(command, query === undefined ? undefined : { ...query, value })) {
    checkKnown(schema, await loadAvailability(), {
      name: command,
      argument: member,
      argumentLive: schema.query(command, query),
      values: [{ value, live: false }],
    });
    return undefined;
  }
  return qmp as unknown as QmpClientFor<Extract<V, ArgumentValueVersions[Q]> & QemuVersion>;
}

/**
 * What `supportsFeature` asks about, for versions `V`: a command or event (`blockdev-snapshot`),
 * an argument (`block-commit.base`, `blockdev-add.nbd.x-dirty-bitmap`), a union branch of the
 * arguments (`blockdev-add[file]`) or a value of an enum-typed argument
 * (`object-add.qom-type=x-remote-object`) — those that carry some feature in some version of `V`.
 */
export type FeatureSubject<V> = {
  [S in keyof FeatureVersions]: [Extract<V, FeatureVersions[S][keyof FeatureVersions[S]]>] extends [
    never,
  ]
    ? never
    : S;
}[keyof FeatureVersions] &
  string;

/** The features subject `S` carries in some version of `V`. */
export type FeatureOf<V, S> = S extends keyof FeatureVersions
  ? {
      [F in keyof FeatureVersions[S]]: [Extract<V, FeatureVersions[S][F]>] extends [never]
        ? never
        : F;
    }[keyof FeatureVersions[S]] &
      string
  : never;

/** The versions of `V` where subject `S` carries feature `F`. */
export type FeatureNarrow<V, S, F> = S extends keyof FeatureVersions
  ? F extends keyof FeatureVersions[S]
    ? Extract<V, FeatureVersions[S][F]> & QemuVersion
    : never
  : never;

/**
 * `supports` for a QAPI feature (`deprecated`, `unstable`, `allow-write-only-overlay`, …):
 * resolves to the same client typed for the versions of the range where `subject` carries
 * `feature`, or `undefined` when the connected QEMU's schema says it does not. The subject is
 * a command or event, `command.member` (`case.member` for a member of one union branch),
 * `command[case]` for a union branch, or `command.member=value` as for `supportsValue`.
 * Subjects and features are checked at compile time against the range's versions.
 *
 * ```ts
 * const qmp = await connect<'4.2' | '7.2'>(address);
 * await supportsFeature(qmp, 'blockdev-snapshot', 'allow-write-only-overlay'); // 5.0+: '7.2'
 * await supportsFeature(qmp, 'blockdev-add[file]', 'dynamic-auto-read-only');
 * ```
 */
export async function supportsFeature<
  V extends QemuVersion,
  S extends FeatureSubject<V>,
  F extends FeatureOf<V, S>,
>(
  qmp: VersionedClient<V>,
  subject: S,
  feature: F,
): Promise<QmpClientFor<FeatureNarrow<V, S, F>> | undefined> {
  const key = String(subject);
  const wanted = String(feature);
  const schema = await qmp.schema();
  if (!schema.query(...featureQuery(schema, key, wanted))) {
    // "No" — unless no known version has the feature there either: a typo (untyped code).
    const tables = await loadAvailability();
    if (tables.features !== undefined && featureAvailability(tables, key, wanted) === undefined)
      throw new QmpUnknownCapabilityError({
        kind: 'feature',
        capability: `${key}/$${wanted}`,
        knownVersions: tables.versions,
      });
    return undefined;
  }
  return qmp as unknown as QmpClientFor<FeatureNarrow<V, S, F>>;
}

/** The schema question for a feature subject (`cmd`, `cmd.member`, `cmd[case]`, `cmd.member=value`). */
function featureQuery(
  schema: SchemaIndex,
  subject: string,
  feature: string,
): [string, UntypedSchemaQuery] {
  const branch = /^([^.[]+)\[([^\]]+)\]$/.exec(subject);
  if (branch) {
    const [, command, which] = branch as unknown as [string, string, string];
    const tag = schema.argumentTag(command);
    return [command, { when: { [tag ?? '\u0000']: which }, feature }];
  }
  const dot = subject.indexOf('.');
  if (dot < 0) return [subject, { feature }];
  const command = subject.slice(0, dot);
  const eq = subject.indexOf('=', dot);
  const member = subject.slice(dot + 1, eq < 0 ? undefined : eq);
  const query = memberQuery(schema, command, member);
  return [command, { ...query, ...(eq < 0 ? {} : { value: subject.slice(eq + 1) }), feature }];
}

/** The schema question for an argument key: `member`, or `case.member` of a union branch. */
function memberQuery(
  schema: SchemaIndex,
  command: string,
  key: string | undefined,
): UntypedSchemaQuery | undefined {
  if (key === undefined) return undefined;
  const dot = key.indexOf('.');
  if (dot < 0) return { member: key };
  const tag = schema.argumentTag(command);
  // Arguments that are not a union here cannot have the branch.
  if (tag === undefined) return { member: '\u0000' };
  return { when: { [tag]: key.slice(0, dot) }, member: key.slice(dot + 1) };
}
