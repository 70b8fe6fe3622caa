/**
 * Run-time capability questions answered from `query-qmp-schema` (what *this* QEMU binary
 * supports), asked with names checked at compile time against the generated bindings.
 */
import { readSchemaInfo, type SchemaInfo, type SchemaInfoMember } from '@qmpkit/schema/info';
import type { KeysOfUnion } from './types.js';

/** QAPI special features seen in QEMU's schemas; `has(…, { feature })` accepts only these. */
export type QapiFeature =
  | 'deprecated'
  | 'unstable'
  | 'allow-write-only-overlay'
  | 'dynamic-auto-read-only'
  | 'json-cli'
  | 'json-cli-hotplug'
  | 'savevm-monitor-nodes'
  | 'fdset';

/** One `query-qmp-schema` entry: the shape `@qmpkit/schema`'s one reader checks. */
export type { SchemaInfo };
/** A member of an object type's `SchemaInfo`. */
export type SchemaMember = SchemaInfoMember;

type ObjectInfo = Extract<SchemaInfo, { 'meta-type': 'object' }>;
type EnumInfo = Extract<SchemaInfo, { 'meta-type': 'enum' }>;
type CommandInfo = Extract<SchemaInfo, { 'meta-type': 'command' }>;
type EventInfo = Extract<SchemaInfo, { 'meta-type': 'event' }>;
type TypeInfo = Exclude<SchemaInfo, CommandInfo | EventInfo>;

type Elem<X> = X extends readonly (infer U)[] ? U : X;
type IsUnion<T, U = T> = T extends unknown ? ([U] extends [T] ? false : true) : never;
type IsSingleLiteral<X> = [X] extends [string]
  ? string extends X
    ? false
    : true extends IsUnion<X>
      ? false
      : true
  : false;
/** String literal values a member accepts (enum values; elements for arrays of enums). */
type LiteralValues<T, M extends string> = T extends unknown
  ? M extends keyof T
    ? Extract<Elem<NonNullable<T[M]>>, string> extends infer V
      ? string extends V
        ? never
        : V
      : never
    : never
  : never;
/** Members whose type is exactly one string literal: a union branch's discriminator. */
type DiscriminatorKeys<T> = {
  [P in keyof T]-?: IsSingleLiteral<T[P]> extends true ? P : never;
}[keyof T] &
  string;

/** The object type(s) inside a member: arrays unwrapped, scalars and strings dropped. */
type InnerObject<T, M extends string> = T extends unknown
  ? M extends keyof T
    ? Elem<NonNullable<T[M]>> extends infer X
      ? X extends readonly unknown[]
        ? never
        : X extends object
          ? X
          : never
      : never
    : never
  : never;

type MemberQueries<T> = {
  [M in KeysOfUnion<T>]: {
    /** An argument (command) or data (event) member, anywhere in the union's branches. */
    readonly member: M;
    /** Is this value accepted (an enum value of the member; a union branch for tags)? */
    readonly value?: LiteralValues<T, M>;
    /** Does the member (or, with `value`, that enum value) carry this feature? */
    readonly feature?: QapiFeature;
    /**
     * A question about the member's own type (its elements, for arrays), e.g.
     * `{ member: 'capabilities', inner: { member: 'capability', value: 'background-snapshot' } }`.
     */
    readonly inner?: SchemaQuery<InnerObject<T, M>>;
    readonly when?: never;
  };
}[KeysOfUnion<T>];

type BranchQueries<T> = T extends unknown
  ? {
      /** Select a union branch, e.g. `{ driver: 'qcow2' }`. */
      readonly when: { readonly [P in DiscriminatorKeys<T>]?: T[P] };
      /** A member that must exist in that branch (omit to ask whether the branch exists). */
      readonly member?: keyof T & string;
      readonly feature?: QapiFeature;
      readonly value?: never;
      readonly inner?: never;
    }
  : never;

/**
 * A typed question about a command's arguments or an event's data. Member names, enum
 * values and branch tags are checked against the bindings' types, so typos do not compile:
 * - `{ member: 'discard' }` — does the member exist (in any branch)?
 * - `{ member: 'driver', value: 'qcow2' }` — is `qcow2` an accepted value (a union branch)?
 * - `{ when: { driver: 'qcow2' }, member: 'data-file' }` — a member of one branch
 * - `{ member: 'base', feature: 'deprecated' }`, `{ feature: 'deprecated' }` — features
 * - `{ member: 'capabilities', inner: { member: 'capability', value: 'background-snapshot' } }`
 *   — a question about a member's own type (array elements, nested objects, alternates)
 */
export type SchemaQuery<T> =
  | MemberQueries<Exclude<T, undefined>>
  | BranchQueries<Exclude<T, undefined>>
  | {
      readonly feature: QapiFeature;
      readonly member?: never;
      readonly when?: never;
      readonly inner?: never;
    };

/** The runtime shape of any `SchemaQuery`. */
export interface UntypedSchemaQuery {
  readonly member?: string;
  readonly value?: string;
  readonly feature?: string;
  readonly when?: Readonly<Record<string, unknown>>;
  readonly inner?: UntypedSchemaQuery;
}

/** Index over a `query-qmp-schema` result (names there are masked; we follow references). */
export class SchemaIndex {
  readonly entries: readonly SchemaInfo[];
  private readonly types = new Map<string, TypeInfo>();
  private readonly commands = new Map<string, CommandInfo>();
  private readonly events = new Map<string, EventInfo>();

  constructor(entries: readonly SchemaInfo[]) {
    this.entries = entries;
    for (const entry of entries) {
      if (entry['meta-type'] === 'command') this.commands.set(entry.name, entry);
      else if (entry['meta-type'] === 'event') this.events.set(entry.name, entry);
      else this.types.set(entry.name, entry);
    }
  }

  /**
   * Checks the shape with `@qmpkit/schema`'s reader and builds the index. Throws `TypeError`
   * (with the reader's `SchemaError`, naming the bad entry, as `cause`) on anything else.
   */
  static from(value: unknown): SchemaIndex {
    try {
      return new SchemaIndex(readSchemaInfo('query-qmp-schema', value));
    } catch (error) {
      throw new TypeError(
        `query-qmp-schema did not return a SchemaInfo list: ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      );
    }
  }

  commandNames(): string[] {
    return [...this.commands.keys()];
  }
  eventNames(): string[] {
    return [...this.events.keys()];
  }
  command(name: string): SchemaInfo | undefined {
    return this.commands.get(name);
  }
  event(name: string): SchemaInfo | undefined {
    return this.events.get(name);
  }
  type(name: string): SchemaInfo | undefined {
    return this.types.get(name);
  }

  /** The discriminator of a command's arguments when they are a union (`driver` of `blockdev-add`). */
  argumentTag(command: string): string | undefined {
    const argType = this.commands.get(command)?.['arg-type'];
    return argType === undefined ? undefined : this.object(argType)?.tag;
  }

  /** Whether `exec-oob` is allowed for a command. */
  allowsOob(command: string): boolean {
    return this.commands.get(command)?.['allow-oob'] === true;
  }

  /**
   * Answers a question about a command or event (commands first when a name is both).
   * Untyped: prefer `QmpClient.has`, whose names are checked at compile time.
   */
  query(name: string, query?: UntypedSchemaQuery): boolean {
    const entry = this.commands.get(name) ?? this.events.get(name);
    if (entry === undefined) return false;
    if (query === undefined) return true;
    if (query.member === undefined && query.when === undefined) {
      return query.feature === undefined || (entry.features ?? []).includes(query.feature);
    }
    return this.evaluate(entry['arg-type'], query);
  }

  private object(typeName: string): ObjectInfo | undefined {
    const type = this.types.get(typeName);
    return type?.['meta-type'] === 'object' ? type : undefined;
  }

  /** Evaluates a query against an object type. */
  private evaluate(typeName: string, query: UntypedSchemaQuery): boolean {
    const { member, value, feature, when, inner } = query;
    if (member === undefined && when === undefined) {
      return feature === undefined || (this.types.get(typeName)?.features ?? []).includes(feature);
    }
    const found = this.findMember(typeName, member, when);
    if (found === false) return false;
    // `when` alone: the branch exists — and, with `feature`, the branch's type carries it
    // (`{ when: { driver: 'file' }, feature: 'dynamic-auto-read-only' }`).
    if (found === true) return feature === undefined || this.branchHas(typeName, when, feature);
    if (inner !== undefined) {
      const object = this.objectOf(found.type);
      if (object === undefined || !this.evaluate(object, inner)) return false;
    }
    if (value !== undefined) {
      const enumEntry = this.enumOf(found.type);
      if (enumEntry === undefined) return false;
      if (!enumValues(enumEntry).includes(value)) return false;
      if (feature === undefined) return true;
      const valueMember = enumEntry.members?.find((m) => m.name === value);
      return (valueMember?.features ?? []).includes(feature);
    }
    return feature === undefined || (found.features ?? []).includes(feature);
  }

  /** Does the union branch `when` selects (by the type's tag) carry `feature`? */
  private branchHas(
    typeName: string,
    when: Readonly<Record<string, unknown>> | undefined,
    feature: string,
  ): boolean {
    const type = this.object(typeName);
    const wanted = type?.tag === undefined ? undefined : when?.[type.tag];
    const branch = type?.variants?.find((v) => v.case === wanted);
    return branch !== undefined && (this.types.get(branch.type)?.features ?? []).includes(feature);
  }

  /** The object type behind a type reference, looking through arrays and alternates. */
  private objectOf(typeName: string, depth = 0): string | undefined {
    const type = this.types.get(typeName);
    if (type === undefined || depth > 8) return undefined;
    if (type['meta-type'] === 'object') return typeName;
    if (type['meta-type'] === 'array') return this.objectOf(type['element-type'], depth + 1);
    if (type['meta-type'] === 'alternate') {
      for (const alt of type.members) {
        const found = this.objectOf(alt.type, depth + 1);
        if (found) return found;
      }
    }
    return undefined;
  }

  /** The enum behind a type reference, looking through arrays and alternates. */
  private enumOf(typeName: string): EnumInfo | undefined {
    const type = this.types.get(typeName);
    if (type === undefined) return undefined;
    if (type['meta-type'] === 'enum') return type;
    if (type['meta-type'] === 'array') return this.enumOf(type['element-type']);
    if (type['meta-type'] === 'alternate') {
      for (const alt of type.members) {
        const found = this.enumOf(alt.type);
        if (found) return found;
      }
    }
    return undefined;
  }

  /**
   * Finds `member` in object type `typeName`, restricted by `when`. Returns the member,
   * `true` when there is no member to find and the `when` branch exists, `false` otherwise.
   */
  private findMember(
    typeName: string,
    member: string | undefined,
    when: Readonly<Record<string, unknown>> | undefined,
    depth = 0,
  ): SchemaMember | boolean {
    const type = this.object(typeName);
    if (type === undefined || depth > 8) return false;
    const base = type.members;
    let branches: readonly { case: string; type: string }[] = type.variants ?? [];
    for (const [key, wanted] of Object.entries(when ?? {})) {
      if (wanted === undefined) continue;
      if (typeof wanted !== 'string') return false;
      const keyMember = base.find((m) => m.name === key);
      if (keyMember === undefined) return false;
      const keyEnum = this.enumOf(keyMember.type);
      if (keyEnum === undefined || !enumValues(keyEnum).includes(wanted)) return false;
      if (type.tag === key) branches = branches.filter((v) => v.case === wanted);
    }
    if (member === undefined) return true;
    const direct = base.find((m) => m.name === member);
    if (direct) return direct;
    for (const branch of branches) {
      const found = this.findMember(branch.type, member, undefined, depth + 1);
      if (typeof found === 'object') return found;
    }
    return false;
  }
}

function enumValues(entry: EnumInfo): readonly string[] {
  return entry.values;
}
