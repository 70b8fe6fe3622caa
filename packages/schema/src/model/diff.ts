/**
 * Differences between two schemas (two QEMU versions, or the source and introspection IRs of
 * one version): commands, arguments, return members, events, event members, enum values and
 * union branches added / removed / made optional / made required / retyped / deprecated.
 */
import type { Condition, Feature, Member, Schema, TypeRef } from './ir.js';
import { allMembers, INTEGER_BUILTINS, isDeprecated } from './schema.js';

export type ChangeKind =
  | 'added'
  | 'removed'
  | 'made-optional'
  | 'made-required'
  | 'type-changed'
  | 'deprecated'
  | 'undeprecated';

export type ChangeTarget =
  | 'command'
  | 'argument'
  | 'return-member'
  | 'return-type'
  | 'event'
  | 'event-member'
  | 'type'
  | 'member'
  | 'enum-value'
  | 'branch';

export interface SchemaChange {
  readonly kind: ChangeKind;
  readonly target: ChangeTarget;
  /** Readable location: `blockdev-add`, `blockdev-add.discard`, `RunState.colo`, `BlockdevOptions[nvme]`. */
  readonly path: string;
  readonly from?: string;
  readonly to?: string;
  /** Condition attached in the schema that has the element (source only), if any. */
  readonly if?: Condition;
}

export interface DiffOptions {
  /**
   * Compare all integer builtins (`int8` … `uint64`, `size`) as `int`, as introspection does.
   * Default: true when either schema comes from introspection.
   */
  readonly collapseIntegers?: boolean;
}

/**
 * Pairs the implicit types of two schemas by where they are used, not by name: `before`'s
 * implicit type → `after`'s. Masked introspection names get names derived from the first place
 * that uses them (`BlockdevAddArgumentsNbd`), and that place can differ between versions, so
 * one type can carry two names. Walking both schemas in step from every command and event
 * (members by name, branches by case, alternatives by JSON kind, array elements) finds the
 * type `after` has where `before` had its own. Named types are compared by name, never paired.
 */
export function pairImplicitTypes(before: Schema, after: Schema): ReadonlyMap<string, string> {
  const pairs = new Map<string, string>();
  const seen = new Set<string>();
  const queue: [string, string][] = [];
  const ref = (a: TypeRef | undefined, b: TypeRef | undefined): void => {
    if (a === undefined || b === undefined) return;
    if (a.kind === 'array' && b.kind === 'array') ref(a.element, b.element);
    else if (a.kind === 'named' && b.kind === 'named') queue.push([a.name, b.name]);
  };
  for (const [name, a] of before.commands) {
    const b = after.commands.get(name);
    if (b === undefined) continue;
    if (a.args !== undefined && b.args !== undefined) queue.push([a.args, b.args]);
    ref(a.returns, b.returns);
  }
  for (const [name, a] of before.events) {
    const b = after.events.get(name);
    if (a.data !== undefined && b?.data !== undefined) queue.push([a.data, b.data]);
  }
  for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
    const [aName, bName] = next;
    const a = before.types.get(aName);
    const b = after.types.get(bName);
    const key = `${aName}\u0000${bName}`;
    if (a === undefined || b === undefined || seen.has(key)) continue;
    seen.add(key);
    // Named types keep their names; an implicit type pairs only with an implicit one (the
    // first place that uses it decides).
    if (a.implicit === undefined || b.implicit === undefined) {
      if (aName !== bName) continue;
    } else if (pairs.has(aName)) continue;
    else pairs.set(aName, bName);
    const bMembers = new Map((allMembers(after, bName) ?? []).map((m) => [m.name, m.type]));
    for (const m of allMembers(before, aName) ?? []) ref(m.type, bMembers.get(m.name));
    if (a.kind === 'union' && b.kind === 'union') {
      const branches = new Map(b.branches.map((x) => [x.case, x.type]));
      for (const x of a.branches) {
        const other = branches.get(x.case);
        if (other !== undefined) queue.push([x.type, other]);
      }
    }
    if (a.kind === 'alternate' && b.kind === 'alternate') {
      const alternatives = new Map(b.alternatives.map((x) => [x.name, x.type]));
      for (const x of a.alternatives) ref(x.type, alternatives.get(x.name));
    }
  }
  return pairs;
}

export function diffSchemas(
  before: Schema,
  after: Schema,
  options: DiffOptions = {},
): SchemaChange[] {
  const collapse =
    options.collapseIntegers ??
    (before.origin.kind === 'introspection' || after.origin.kind === 'introspection');
  const pairs = pairImplicitTypes(before, after);
  const typeString = (ref: TypeRef): string =>
    ref.kind === 'array'
      ? `[${typeString(ref.element)}]`
      : collapse && INTEGER_BUILTINS.has(ref.name)
        ? 'int'
        : ref.name;
  /** `before`'s type reference in `after`'s names, to tell a renamed type from a changed one. */
  const inAfter = (ref: TypeRef): string =>
    ref.kind === 'array' ? `[${inAfter(ref.element)}]` : (pairs.get(ref.name) ?? typeString(ref));
  const changes: SchemaChange[] = [];
  const push = (change: SchemaChange) => changes.push(change);

  const deprecation = (
    path: string,
    target: ChangeTarget,
    a: readonly Feature[],
    b: readonly Feature[],
  ) => {
    if (!isDeprecated(a) && isDeprecated(b)) push({ kind: 'deprecated', target, path });
    if (isDeprecated(a) && !isDeprecated(b)) push({ kind: 'undeprecated', target, path });
  };

  const members = (
    target: ChangeTarget,
    path: string,
    a: readonly Member[],
    b: readonly Member[],
  ) => {
    const byName = new Map(b.map((m) => [m.name, m]));
    const seen = new Set<string>();
    for (const m of a) {
      const other = byName.get(m.name);
      const at = `${path}.${m.name}`;
      seen.add(m.name);
      if (!other) {
        push({
          kind: 'removed',
          target,
          path: at,
          from: typeString(m.type),
          ...(m.if ? { if: m.if } : {}),
        });
        continue;
      }
      if (!m.optional && other.optional) push({ kind: 'made-optional', target, path: at });
      if (m.optional && !other.optional) push({ kind: 'made-required', target, path: at });
      const from = typeString(m.type);
      const to = typeString(other.type);
      if (inAfter(m.type) !== to) push({ kind: 'type-changed', target, path: at, from, to });
      deprecation(at, target, m.features, other.features);
    }
    for (const m of b) {
      if (!seen.has(m.name)) {
        push({
          kind: 'added',
          target,
          path: `${path}.${m.name}`,
          to: typeString(m.type),
          ...(m.if ? { if: m.if } : {}),
        });
      }
    }
  };
  const membersOf = (schema: Schema, name: string | undefined): readonly Member[] =>
    name === undefined ? [] : (allMembers(schema, name) ?? []);

  // Commands: arguments (flattened) and returns.
  for (const [name, a] of before.commands) {
    const b = after.commands.get(name);
    if (!b) {
      push({ kind: 'removed', target: 'command', path: name, ...(a.if ? { if: a.if } : {}) });
      continue;
    }
    members('argument', name, membersOf(before, a.args), membersOf(after, b.args));
    const ra = a.returns ? typeString(a.returns) : '{}';
    const rb = b.returns ? typeString(b.returns) : '{}';
    if ((a.returns ? inAfter(a.returns) : '{}') !== rb)
      push({ kind: 'type-changed', target: 'return-type', path: name, from: ra, to: rb });
    else if (a.returns?.kind === 'named' && b.returns?.kind === 'named') {
      const da = before.types.get(a.returns.name);
      if (da?.kind === 'struct')
        members(
          'return-member',
          `${name}→`,
          membersOf(before, a.returns.name),
          membersOf(after, b.returns.name),
        );
    }
    deprecation(name, 'command', a.features, b.features);
  }
  for (const [name, b] of after.commands) {
    if (!before.commands.has(name))
      push({ kind: 'added', target: 'command', path: name, ...(b.if ? { if: b.if } : {}) });
  }

  // Events: data members.
  for (const [name, a] of before.events) {
    const b = after.events.get(name);
    if (!b) {
      push({ kind: 'removed', target: 'event', path: name, ...(a.if ? { if: a.if } : {}) });
      continue;
    }
    members('event-member', name, membersOf(before, a.data), membersOf(after, b.data));
    deprecation(name, 'event', a.features, b.features);
  }
  for (const [name, b] of after.events) {
    if (!before.events.has(name))
      push({ kind: 'added', target: 'event', path: name, ...(b.if ? { if: b.if } : {}) });
  }

  // Named types present in both: enum values, union branches, struct members.
  for (const [name, a] of before.types) {
    const bName = pairs.get(name) ?? name;
    const b = after.types.get(bName);
    if (!b) continue;
    if (a.kind !== b.kind) {
      push({ kind: 'type-changed', target: 'type', path: name, from: a.kind, to: b.kind });
      deprecation(name, 'type', a.features, b.features);
      continue;
    }
    // Implicit argument, return and event-data structs were compared above with their command
    // or event; comparing them again as types would report every change twice. Unions there
    // (`blockdev-add`'s masked `BlockdevOptions` in a raw capture) still need their branches
    // and base compared: the command only compared the flattened base members.
    const role = a.implicit?.role;
    if (
      (role === 'arguments' || role === 'event-data' || role === 'returns') &&
      a.kind === 'struct'
    )
      continue;
    if (a.kind === 'enum' && b.kind === 'enum') {
      const values = new Map(b.values.map((v) => [v.name, v]));
      for (const v of a.values) {
        const other = values.get(v.name);
        if (!other)
          push({
            kind: 'removed',
            target: 'enum-value',
            path: `${name}.${v.name}`,
            ...(v.if ? { if: v.if } : {}),
          });
        else deprecation(`${name}.${v.name}`, 'enum-value', v.features, other.features);
      }
      const old = new Set(a.values.map((v) => v.name));
      for (const v of b.values) {
        if (!old.has(v.name))
          push({
            kind: 'added',
            target: 'enum-value',
            path: `${name}.${v.name}`,
            ...(v.if ? { if: v.if } : {}),
          });
      }
    } else if (a.kind === 'union' && b.kind === 'union') {
      const branches = new Map(b.branches.map((x) => [x.case, x]));
      for (const x of a.branches) {
        const other = branches.get(x.case);
        if (!other)
          push({
            kind: 'removed',
            target: 'branch',
            path: `${name}[${x.case}]`,
            from: x.type,
            ...(x.if ? { if: x.if } : {}),
          });
        else if ((pairs.get(x.type) ?? x.type) !== other.type)
          push({
            kind: 'type-changed',
            target: 'branch',
            path: `${name}[${x.case}]`,
            from: x.type,
            to: other.type,
          });
      }
      const old = new Set(a.branches.map((x) => x.case));
      for (const x of b.branches) {
        if (!old.has(x.case))
          push({
            kind: 'added',
            target: 'branch',
            path: `${name}[${x.case}]`,
            to: x.type,
            ...(x.if ? { if: x.if } : {}),
          });
      }
      members('member', name, membersOf(before, name), membersOf(after, bName));
    } else if (a.kind === 'struct' && b.kind === 'struct') {
      members('member', name, membersOf(before, name), membersOf(after, bName));
    }
    deprecation(name, 'type', a.features, b.features);
  }
  return changes;
}

/** One line per change, e.g. `+ argument blockdev-add.discard-no-unref (bool)`. */
export function formatChange(change: SchemaChange): string {
  const sign: Record<ChangeKind, string> = {
    added: '+',
    removed: '-',
    'made-optional': '~',
    'made-required': '~',
    'type-changed': '~',
    deprecated: '!',
    undeprecated: '!',
  };
  const detail =
    change.kind === 'type-changed'
      ? ` (${change.from} → ${change.to})`
      : change.kind === 'added' && change.to
        ? ` (${change.to})`
        : change.kind === 'removed' && change.from
          ? ` (${change.from})`
          : change.kind === 'added' || change.kind === 'removed'
            ? ''
            : ` ${change.kind}`;
  return `${sign[change.kind]} ${change.target} ${change.path}${detail}`;
}
