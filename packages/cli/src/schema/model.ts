/**
 * Questions the shell asks about a command's arguments, answered from runtime tables:
 * which keys an object takes (given what is already typed: a union's tag selects a branch),
 * the type at a nested key path, the values an enum or bool accepts.
 */

import type {
  MemberTable,
  ObjectTable,
  SchemaTables,
  TypeRefString,
} from '@qmpkit/qapi/runtime-v1';
import { arrayElement } from '@qmpkit/schema/info';

const INTEGERS = new Set([
  'int',
  'int8',
  'int16',
  'int32',
  'int64',
  'uint8',
  'uint16',
  'uint32',
  'uint64',
  'size',
]);

export function isIntegerType(ref: TypeRefString): boolean {
  return INTEGERS.has(ref);
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export class ArgumentModel {
  constructor(readonly tables: SchemaTables) {}

  get qemuVersion(): string {
    return this.tables.qemuVersion;
  }

  commandNames(): string[] {
    return Object.keys(this.tables.commands).sort();
  }

  eventNames(): string[] {
    return Object.keys(this.tables.events).sort();
  }

  hasCommand(name: string): boolean {
    return Object.hasOwn(this.tables.commands, name);
  }

  /** The argument type of a command (`undefined`: takes none, or unknown command). */
  argType(command: string): TypeRefString | undefined {
    return Object.hasOwn(this.tables.commands, command)
      ? this.tables.commands[command]?.args
      : undefined;
  }

  /** The object table behind a reference, looking through alternates. */
  object(ref: TypeRefString | undefined): ObjectTable | undefined {
    if (ref === undefined) return undefined;
    const def = this.tables.types[ref];
    if (def?.kind === 'object') return def;
    if (def?.kind === 'alternate') {
      for (const alt of def.alternatives) {
        const found = this.object(alt);
        if (found) return found;
      }
    }
    return undefined;
  }

  /** The element type of an array reference (also through alternates), or `undefined`. */
  element(ref: TypeRefString | undefined): TypeRefString | undefined {
    if (ref === undefined) return undefined;
    const element = arrayElement(ref);
    if (element !== undefined) return element;
    const def = this.tables.types[ref];
    if (def?.kind === 'alternate') {
      for (const alt of def.alternatives) {
        const found = this.element(alt);
        if (found) return found;
      }
    }
    return undefined;
  }

  /**
   * Members an object accepts given the value typed so far: the base members, plus the
   * branch selected by the tag's value when it is set. `branches` lists the tag values when
   * no branch is selected yet.
   */
  members(
    ref: TypeRefString | undefined,
    value?: unknown,
  ): { members: MemberTable[]; tag?: string; branchSelected: boolean } {
    const def = this.object(ref);
    if (def === undefined) return { members: [], branchSelected: false };
    if (def.tag === undefined || def.variants === undefined)
      return { members: [...def.members], branchSelected: false };
    const tagValue = isRecord(value) ? value[def.tag] : undefined;
    const variant = typeof tagValue === 'string' ? def.variants[tagValue] : undefined;
    const branch = this.object(variant);
    return {
      members: branch ? [...def.members, ...branch.members] : [...def.members],
      tag: def.tag,
      branchSelected: branch !== undefined,
    };
  }

  /**
   * The type at a key path below `root` (segments of `a.b.0.c`), or `undefined` when the
   * schema has no such key. `value` is the argument object built so far (it selects union
   * branches along the way).
   */
  typeAt(
    root: TypeRefString | undefined,
    segments: readonly string[],
    value: unknown,
  ): TypeRefString | undefined {
    let ref = root;
    let current = value;
    for (const segment of segments) {
      if (ref === undefined) return undefined;
      if (/^\d+$/.test(segment)) {
        const element = this.element(ref);
        if (element !== undefined) {
          ref = element;
          current = Array.isArray(current)
            ? current[Number(segment)]
            : isRecord(current)
              ? current[segment]
              : undefined;
          continue;
        }
      }
      const member = this.members(ref, current).members.find((m) => m.name === segment);
      if (member === undefined) return undefined;
      ref = member.type;
      current = isRecord(current) ? current[segment] : undefined;
    }
    return ref;
  }

  /**
   * Literal values a type accepts, for completing `key=<TAB>`: enum values, `true`/`false`
   * for bools, `null` for null, and the union of these over an alternate's branches.
   */
  literals(ref: TypeRefString | undefined): string[] {
    if (ref === undefined) return [];
    if (ref === 'bool') return ['false', 'true'];
    if (ref === 'null') return ['null'];
    const def = this.tables.types[ref];
    if (def?.kind === 'enum') return [...def.values];
    if (def?.kind === 'alternate')
      return [...new Set(def.alternatives.flatMap((a) => this.literals(a)))];
    return [];
  }

  /** A short human description of a type: `str`, `int`, `enum (a | b | …)`, `[str]`, `object`. */
  describe(ref: TypeRefString, depth = 0): string {
    const element = arrayElement(ref);
    if (element !== undefined) return `[${this.describe(element, depth + 1)}]`;
    const def = this.tables.types[ref];
    if (def === undefined) return isIntegerType(ref) ? 'int' : ref;
    if (def.kind === 'enum') {
      const shown = def.values.slice(0, 6).join(' | ');
      return `enum (${shown}${def.values.length > 6 ? ` | … ${def.values.length - 6} more` : ''})`;
    }
    if (def.kind === 'alternate')
      return depth > 1
        ? 'alternate'
        : def.alternatives.map((a) => this.describe(a, depth + 1)).join(' or ');
    return def.tag !== undefined ? `object (union on '${def.tag}')` : 'object';
  }
}
