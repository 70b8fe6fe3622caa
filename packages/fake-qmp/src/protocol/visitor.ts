/**
 * Checks a command's arguments against the generated schema tables the way QEMU's QObject
 * input visitor does, and returns QEMU's own error text for the first problem: members are
 * visited in schema order (base members, then the union branch), a struct's leftover keys
 * are reported after its members, names are QEMU's "full names" (`file.driver`,
 * `capabilities[0].capability`) except where QEMU prints the bare member name (enum values,
 * integer ranges, alternates). Wording measured on QEMU 7.2 (see the contract tests).
 */

import type { SchemaTables, TypeRefString } from '@qmpkit/qapi/runtime-v1';
import { arrayElement } from '@qmpkit/schema/info';
import { isDict, type QemuDict, QemuFloat } from '../json/values.js';
import { qdictOrder } from '../json/writer.js';
import { GHashTableOrder } from '../model/ghash.js';

class VisitError extends Error {}

type Frame =
  | { kind: 'dict'; name: string | null; dict: QemuDict; unvisited: GHashTableOrder }
  | { kind: 'list'; name: string | null; index: number };

const INT_RANGES: Readonly<Record<string, readonly [bigint, bigint, string]>> = {
  int8: [-128n, 127n, 'int8_t'],
  int16: [-32768n, 32767n, 'int16_t'],
  int32: [-2147483648n, 2147483647n, 'int32_t'],
};
const UINT_RANGES: Readonly<Record<string, readonly [bigint, string]>> = {
  uint8: [255n, 'uint8_t'],
  uint16: [65535n, 'uint16_t'],
  uint32: [4294967295n, 'uint32_t'],
};
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;

/** The integer QEMU's QNum holds, or undefined for doubles and non-numbers. */
function qnumInteger(value: unknown): bigint | undefined {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number' && Number.isInteger(value)) return BigInt(value);
  return undefined;
}

function isQnum(value: unknown): boolean {
  return typeof value === 'number' || typeof value === 'bigint' || value instanceof QemuFloat;
}

/** Real integer builtins of members the tables (from introspection) only know as `int`. */
export type IntegerMembers = Readonly<Record<string, Readonly<Record<string, string>>>>;

class Visitor {
  private readonly stack: Frame[] = [];

  constructor(
    private readonly tables: SchemaTables,
    private readonly integers: IntegerMembers,
  ) {}

  /** QEMU's `full_name()`: the path of what is visited under `name`. */
  fullName(name: string | null): string {
    let out = '';
    let current = name;
    for (let i = this.stack.length - 1; i >= 0; i--) {
      const frame = this.stack[i]!;
      if (frame.kind === 'dict') out = `.${current ?? '<anonymous>'}${out}`;
      else out = `[${frame.index}]${out}`;
      current = frame.name;
    }
    if (current !== null) return current + out;
    if (out.startsWith('.')) return out.slice(1);
    return out === '' ? '<anonymous>' : out;
  }

  private fail(message: string): never {
    throw new VisitError(message);
  }

  /** Fetches (and consumes) the value named `name` in the current container. */
  private get(name: string | null, consume: boolean, root: unknown): unknown {
    const top = this.stack[this.stack.length - 1];
    if (!top) return root;
    if (top.kind === 'dict') {
      const value = top.dict[name!];
      if (consume && value !== undefined) top.unvisited.remove(name!);
      if (value === undefined) this.fail(`Parameter '${this.fullName(name)}' is missing`);
      return value;
    }
    // Lists are walked by the caller; get() is never used for their elements.
    return undefined;
  }

  private typeError(name: string | null, expected: string): never {
    this.fail(`Invalid parameter type for '${this.fullName(name)}', expected: ${expected}`);
  }

  visitRoot(type: TypeRefString, args: QemuDict): void {
    this.visitStruct(null, type, args);
  }

  private visitStruct(name: string | null, type: TypeRefString, value: unknown): void {
    if (!isDict(value)) this.typeError(name, 'object');
    this.push({
      kind: 'dict',
      name,
      dict: value,
      unvisited: new GHashTableOrder(qdictKeys(value)),
    });
    this.visitMembers(type);
    this.checkStruct();
    this.stack.pop();
  }

  private push(frame: Frame): void {
    this.stack.push(frame);
  }

  private checkStruct(): void {
    const top = this.stack[this.stack.length - 1];
    if (top?.kind !== 'dict') return;
    // QEMU names the first leftover key of a GLib hash table of the struct's keys.
    const [key] = top.unvisited.keysInOrder();
    if (key !== undefined) this.fail(`Parameter '${this.fullName(key)}' is unexpected`);
  }

  /** Visits the members of an object type inside the current dict (no new frame). */
  private visitMembers(type: TypeRefString): void {
    const def = this.tables.types[type];
    if (def?.kind !== 'object') return;
    const top = this.stack[this.stack.length - 1]! as Extract<Frame, { kind: 'dict' }>;
    const sized = this.integers[type];
    for (const member of def.members) {
      if (member.optional && top.dict[member.name] === undefined) continue;
      this.visitValue(member.name, sized?.[member.name] ?? member.type);
    }
    if (def.tag !== undefined && def.variants) {
      const tag = top.dict[def.tag];
      const variant = typeof tag === 'string' ? def.variants[tag] : undefined;
      if (variant !== undefined) this.visitMembers(variant);
    }
  }

  private visitValue(name: string | null, type: TypeRefString): void {
    const element = arrayElement(type);
    if (element !== undefined) {
      const value = this.getValue(name);
      if (!Array.isArray(value)) this.typeError(name, 'array');
      const frame: Frame = { kind: 'list', name, index: -1 };
      this.push(frame);
      for (const item of value) {
        frame.index++;
        this.visitElement(element, item);
      }
      this.stack.pop();
      return;
    }
    this.visitScalarOrObject(name, type, () => this.getValue(name));
  }

  private visitElement(type: TypeRefString, value: unknown): void {
    const element = arrayElement(type);
    if (element !== undefined) {
      if (!Array.isArray(value)) this.typeError(null, 'array');
      const frame: Frame = { kind: 'list', name: null, index: -1 };
      this.push(frame);
      for (const item of value) {
        frame.index++;
        this.visitElement(element, item);
      }
      this.stack.pop();
      return;
    }
    this.visitScalarOrObject(null, type, () => value);
  }

  private getValue(name: string | null): unknown {
    return this.get(name, true, undefined);
  }

  private visitScalarOrObject(
    name: string | null,
    type: TypeRefString,
    fetch: () => unknown,
  ): void {
    switch (type) {
      case 'str': {
        if (typeof fetch() !== 'string') this.typeError(name, 'string');
        return;
      }
      case 'bool':
        if (typeof fetch() !== 'boolean') this.typeError(name, 'boolean');
        return;
      case 'number':
        if (!isQnum(fetch())) this.typeError(name, 'number');
        return;
      case 'null':
        if (fetch() !== null) this.typeError(name, 'null');
        return;
      case 'any':
        fetch();
        return;
      case 'int':
      case 'int64':
      case 'int8':
      case 'int16':
      case 'int32': {
        const n = qnumInteger(fetch());
        if (n === undefined || n < INT64_MIN || n > INT64_MAX) this.typeError(name, 'integer');
        const range = INT_RANGES[type];
        if (range && (n < range[0] || n > range[1]))
          this.fail(`Parameter '${name ?? 'null'}' expects ${range[2]}`);
        return;
      }
      case 'uint64':
      case 'size':
      case 'uint8':
      case 'uint16':
      case 'uint32': {
        let n = qnumInteger(fetch());
        if (n === undefined || n < INT64_MIN || n > UINT64_MAX)
          this.fail(`Parameter '${this.fullName(name)}' expects uint64`);
        if (n < 0n) n += 2n ** 64n; // QEMU accepts negative values and casts them
        const range = UINT_RANGES[type];
        if (range && n > range[0]) this.fail(`Parameter '${name ?? 'null'}' expects ${range[1]}`);
        return;
      }
      case 'QType':
        if (typeof fetch() !== 'string') this.typeError(name, 'string');
        return;
    }
    const def = this.tables.types[type];
    if (!def) {
      fetch();
      return;
    }
    switch (def.kind) {
      case 'enum': {
        const value = fetch();
        if (typeof value !== 'string') this.typeError(name, 'string');
        if (!def.values.includes(value))
          this.fail(`Parameter '${name ?? 'null'}' does not accept value '${value}'`);
        return;
      }
      case 'object':
        this.visitStruct(name, type, fetch());
        return;
      case 'alternate': {
        // QEMU peeks at the value's JSON type (without consuming) and picks a branch.
        const value = this.peek(name, fetch);
        const branch = this.alternateBranch(def.alternatives, value);
        if (branch === undefined)
          this.fail(`Invalid parameter type for '${name ?? 'null'}', expected: ${type}`);
        this.visitScalarOrObject(name, branch, fetch);
        return;
      }
    }
  }

  private peek(name: string | null, fetch: () => unknown): unknown {
    const top = this.stack[this.stack.length - 1];
    if (top?.kind === 'dict') {
      const value = top.dict[name!];
      if (value === undefined) this.fail(`Parameter '${this.fullName(name)}' is missing`);
      return value;
    }
    return fetch();
  }

  private alternateBranch(
    alternatives: readonly TypeRefString[],
    value: unknown,
  ): TypeRefString | undefined {
    const kindOf = (ref: TypeRefString): string => {
      if (ref === 'str') return 'string';
      if (ref === 'bool') return 'boolean';
      if (ref === 'null') return 'null';
      if (ref === 'number' || ref in INT_RANGES || ref in UINT_RANGES) return 'number';
      if (['int', 'int64', 'uint64', 'size'].includes(ref)) return 'number';
      if (arrayElement(ref) !== undefined) return 'array';
      const def = this.tables.types[ref];
      if (def?.kind === 'enum') return 'string';
      if (def?.kind === 'object') return 'object';
      return 'any';
    };
    const kind =
      value === null
        ? 'null'
        : typeof value === 'string'
          ? 'string'
          : typeof value === 'boolean'
            ? 'boolean'
            : isQnum(value)
              ? 'number'
              : Array.isArray(value)
                ? 'array'
                : 'object';
    // QEMU prefers the 'number' branch for doubles and an integer branch for integers.
    const candidates = alternatives.filter((a) => kindOf(a) === kind);
    if (kind === 'number' && candidates.length > 1) {
      const integral = qnumInteger(value) !== undefined;
      return candidates.find((a) => (a === 'number') !== integral) ?? candidates[0];
    }
    return candidates[0];
  }
}

/** Keys of a dict in the order QEMU iterates them. */
export function qdictKeys(dict: QemuDict): readonly string[] {
  return qdictOrder(Object.keys(dict).filter((k) => dict[k] !== undefined));
}

/**
 * The first problem QEMU 7.2 would report for `args` (already known to be an object) of a
 * command whose argument type is `argsType`; `undefined` when QEMU accepts them. Commands
 * without arguments take `argsType` undefined, so every member is unexpected.
 */
export function checkArguments(
  tables: SchemaTables,
  argsType: TypeRefString | undefined,
  args: QemuDict,
  integers: IntegerMembers = {},
): string | undefined {
  if (argsType === undefined) {
    const [key] = new GHashTableOrder(qdictKeys(args)).keysInOrder();
    return key !== undefined ? `Parameter '${key}' is unexpected` : undefined;
  }
  try {
    new Visitor(tables, integers).visitRoot(argsType, args);
    return undefined;
  } catch (error) {
    if (error instanceof VisitError) return error.message;
    throw error;
  }
}
