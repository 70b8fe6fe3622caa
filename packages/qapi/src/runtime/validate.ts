import { arrayElement } from '@qmpkit/schema/info';
import { BUILTIN_RANGES, QTYPE_VALUES, type SchemaTables, type TypeRefString } from './tables.js';

export type ProblemKind =
  | 'missing'
  | 'unexpected'
  | 'type'
  | 'enum'
  | 'range'
  | 'alternate'
  | 'unknown-command'
  | 'unknown-event'
  | 'no-arguments';

/** One thing wrong with a value, with the JSON path where it was found. */
export interface ValidationProblem {
  /** JSONPath-like location: `$`, `$.options.driver`, `$.devices[0]`. */
  readonly path: string;
  readonly kind: ProblemKind;
  /** What was wrong, without the path (see `formatProblem`). */
  readonly message: string;
  /**
   * What the schema expects: a JSON type (`string`, `integer`, `number`, `boolean`, `null`,
   * `object`, `array`), or the alternate's name — the words QEMU uses in its errors.
   */
  readonly expected?: string;
  /**
   * True when a newer QEMU could legitimately produce this in a reply or event (an enum
   * value, member or union branch the tables do not know). Decoders may tolerate these.
   */
  readonly forwardCompatible?: true;
}

export interface ValidateOptions {
  /**
   * Tolerate what a newer QEMU may send (unknown enum values, members, union branches):
   * such problems are not reported. Use for decoding replies and events; default false.
   */
  readonly open?: boolean;
  /** Stop after this many problems (default 50). */
  readonly maxProblems?: number;
}

export function formatProblem(problem: ValidationProblem): string {
  return `${problem.path}: ${problem.message}`;
}

const integerTypes = new Set(Object.keys(BUILTIN_RANGES));
type JsonKind = 'string' | 'integer' | 'number' | 'boolean' | 'null' | 'object' | 'array' | 'value';

function jsonKindOf(value: unknown): Exclude<JsonKind, 'value'> | 'invalid' {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  switch (typeof value) {
    case 'string':
      return 'string';
    case 'boolean':
      return 'boolean';
    case 'number':
      return Number.isInteger(value) ? 'integer' : Number.isFinite(value) ? 'number' : 'invalid';
    case 'object':
      return 'object';
    default:
      return 'invalid';
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describeActual(value: unknown): string {
  const kind = jsonKindOf(value);
  if (kind === 'invalid') return typeof value;
  if (kind === 'string') return JSON.stringify(value);
  if (kind === 'integer' || kind === 'number' || kind === 'boolean' || kind === 'null')
    return String(value);
  return kind;
}

function listValues(values: readonly string[]): string {
  const shown = values.slice(0, 8).map((v) => `'${v}'`);
  const rest = values.length - shown.length;
  return rest > 0 ? `${shown.join(' | ')} | … (${rest} more)` : shown.join(' | ');
}

class Checker {
  readonly problems: ValidationProblem[] = [];
  private readonly max: number;
  private readonly open: boolean;

  constructor(
    private readonly tables: SchemaTables,
    options: ValidateOptions,
  ) {
    this.max = options.maxProblems ?? 50;
    this.open = options.open ?? false;
  }

  private report(problem: ValidationProblem): void {
    if (problem.forwardCompatible && this.open) return;
    if (this.problems.length < this.max) this.problems.push(problem);
  }

  /** The JSON kind a type accepts at its top level (for alternates and type errors). */
  jsonKindOfType(ref: TypeRefString): JsonKind {
    if (arrayElement(ref) !== undefined) return 'array';
    if (ref === 'str') return 'string';
    if (ref === 'number') return 'number';
    if (ref === 'bool') return 'boolean';
    if (ref === 'null') return 'null';
    if (ref === 'any') return 'value';
    if (ref === 'QType') return 'string';
    if (integerTypes.has(ref)) return 'integer';
    const def = this.tables.types[ref];
    if (!def) return 'value';
    if (def.kind === 'enum') return 'string';
    if (def.kind === 'object') return 'object';
    return 'value';
  }

  check(ref: TypeRefString, value: unknown, path: string): void {
    if (this.problems.length >= this.max) return;
    const element = arrayElement(ref);
    if (element !== undefined) {
      if (!Array.isArray(value)) {
        this.typeError(path, 'array', value);
        return;
      }
      value.forEach((item, index) => {
        this.check(element, item, `${path}[${index}]`);
      });
      return;
    }
    const range = BUILTIN_RANGES[ref];
    if (range) {
      if (typeof value !== 'number' || !Number.isInteger(value)) {
        this.typeError(path, 'integer', value);
      } else if (value < range[0] || value > range[1]) {
        this.report({
          path,
          kind: 'range',
          message: `${value} is out of range for ${ref} (${range[0]}..${range[1]})`,
          expected: 'integer',
        });
      }
      return;
    }
    switch (ref) {
      case 'str':
        if (typeof value !== 'string') this.typeError(path, 'string', value);
        return;
      case 'number':
        if (typeof value !== 'number' || !Number.isFinite(value))
          this.typeError(path, 'number', value);
        return;
      case 'bool':
        if (typeof value !== 'boolean') this.typeError(path, 'boolean', value);
        return;
      case 'null':
        if (value !== null) this.typeError(path, 'null', value);
        return;
      case 'any':
        if (jsonKindOf(value) === 'invalid') this.typeError(path, 'value', value);
        return;
      case 'QType':
        this.checkEnum(ref, QTYPE_VALUES, value, path);
        return;
    }
    const def = this.tables.types[ref];
    if (!def) {
      this.report({ path, kind: 'type', message: `the schema tables have no type '${ref}'` });
      return;
    }
    switch (def.kind) {
      case 'enum':
        this.checkEnum(ref, def.values, value, path);
        return;
      case 'alternate':
        this.checkAlternate(ref, def.alternatives, value, path);
        return;
      case 'object':
        this.checkObject(ref, value, path);
        return;
    }
  }

  private typeError(path: string, expected: JsonKind, value: unknown): void {
    this.report({
      path,
      kind: 'type',
      message: `expected ${expected === 'integer' ? 'an integer' : expected === 'array' || expected === 'object' ? `an ${expected}` : `a ${expected}`}, got ${describeActual(value)}`,
      expected,
    });
  }

  private checkEnum(name: string, values: readonly string[], value: unknown, path: string): void {
    if (typeof value !== 'string') {
      this.typeError(path, 'string', value);
      return;
    }
    if (!values.includes(value)) {
      this.report({
        path,
        kind: 'enum',
        message: `expected one of ${listValues(values)}, got '${value}' (${name})`,
        expected: 'string',
        forwardCompatible: true,
      });
    }
  }

  alternativeFor(
    alternatives: readonly TypeRefString[],
    value: unknown,
  ): TypeRefString | undefined {
    const kind = jsonKindOf(value);
    let fallback: TypeRefString | undefined;
    for (const alt of alternatives) {
      const accepts = this.jsonKindOfType(alt);
      if (accepts === kind) return alt;
      if (accepts === 'number' && kind === 'integer') fallback ??= alt;
    }
    return fallback;
  }

  private checkAlternate(
    name: string,
    alternatives: readonly TypeRefString[],
    value: unknown,
    path: string,
  ): void {
    const alt = this.alternativeFor(alternatives, value);
    if (alt === undefined) {
      const kinds = [...new Set(alternatives.map((a) => this.jsonKindOfType(a)))].join(' or ');
      this.report({
        path,
        kind: 'alternate',
        message: `expected ${kinds} (${name}), got ${describeActual(value)}`,
        expected: name,
      });
      return;
    }
    this.check(alt, value, path);
  }

  private checkObject(name: string, value: unknown, path: string): void {
    if (!isRecord(value)) {
      this.typeError(path, 'object', value);
      return;
    }
    const def = this.tables.types[name];
    if (def?.kind !== 'object') return;
    const known = new Set<string>();
    let members = def.members;
    let tagKnown = true;
    if (def.tag !== undefined && def.variants) {
      const tagValue = value[def.tag];
      const variant = typeof tagValue === 'string' ? def.variants[tagValue] : undefined;
      if (variant !== undefined) {
        const branch = this.tables.types[variant];
        if (branch?.kind === 'object') members = [...members, ...branch.members];
      } else if (typeof tagValue === 'string') {
        // A tag value without a branch is valid when it is an enum value of the tag's type.
        const tagMember = def.members.find((m) => m.name === def.tag);
        const tagType = tagMember ? this.tables.types[tagMember.type] : undefined;
        tagKnown = tagType?.kind === 'enum' ? tagType.values.includes(tagValue) : false;
      }
    }
    for (const member of members) {
      known.add(member.name);
      const memberValue = value[member.name];
      const memberPath = `${path}.${member.name}`;
      if (memberValue === undefined) {
        if (!member.optional) {
          this.report({
            path: memberPath,
            kind: 'missing',
            message: `missing required member '${member.name}' (${member.type})`,
            expected: this.jsonKindOfType(member.type),
          });
        }
        continue;
      }
      this.check(member.type, memberValue, memberPath);
    }
    // Members of an unknown union branch cannot be judged.
    if (!tagKnown) return;
    for (const key of Object.keys(value)) {
      if (!known.has(key) && value[key] !== undefined) {
        this.report({
          path: `${path}.${key}`,
          kind: 'unexpected',
          message: `unexpected member '${key}' (${name} has no such member)`,
          forwardCompatible: true,
        });
      }
    }
  }
}

/** Validates a value against a type of the tables. */
export function validateValue(
  tables: SchemaTables,
  type: TypeRefString,
  value: unknown,
  options: ValidateOptions = {},
): ValidationProblem[] {
  const checker = new Checker(tables, options);
  checker.check(type, value, '$');
  return checker.problems;
}

/** Validates the `arguments` of a command (`undefined` = no arguments sent). */
export function validateArgs(
  tables: SchemaTables,
  command: string,
  args: unknown,
  options: ValidateOptions = {},
): ValidationProblem[] {
  const spec = tables.commands[command];
  if (!spec) {
    return [
      {
        path: '$',
        kind: 'unknown-command',
        message: `QEMU ${tables.qemuVersion} has no command '${command}'`,
      },
    ];
  }
  if (spec.args === undefined) {
    const empty =
      args === undefined || (isRecord(args) && Object.values(args).every((v) => v === undefined));
    return empty
      ? []
      : [{ path: '$', kind: 'no-arguments', message: `command '${command}' takes no arguments` }];
  }
  const problems = validateValue(tables, spec.args, args ?? {}, options);
  // Commands QEMU does not check (`'gen': false`) accept members beyond the schema's.
  return spec.openArgs
    ? problems.filter((p) => !(p.kind === 'unexpected' && p.path.lastIndexOf('.') === 1))
    : problems;
}

/** Validates the `return` value of a command. Returns of commands without `returns` must be `{}`. */
export function validateReturn(
  tables: SchemaTables,
  command: string,
  value: unknown,
  options: ValidateOptions = {},
): ValidationProblem[] {
  const spec = tables.commands[command];
  if (!spec) {
    return [
      {
        path: '$',
        kind: 'unknown-command',
        message: `QEMU ${tables.qemuVersion} has no command '${command}'`,
      },
    ];
  }
  if (spec.returns === undefined) {
    if (isRecord(value) && Object.keys(value).length === 0) return [];
    return [
      {
        path: '$',
        kind: 'type',
        message: `expected {}, got ${describeActual(value)}`,
        expected: 'object',
      },
    ];
  }
  return validateValue(tables, spec.returns, value, options);
}

/** Validates the `data` of an event (`undefined` = the event had no data member). */
export function validateEvent(
  tables: SchemaTables,
  event: string,
  data: unknown,
  options: ValidateOptions = {},
): ValidationProblem[] {
  const spec = tables.events[event];
  if (!spec) {
    if (options.open) return [];
    return [
      {
        path: '$',
        kind: 'unknown-event',
        message: `QEMU ${tables.qemuVersion} has no event '${event}'`,
        forwardCompatible: true,
      },
    ];
  }
  if (spec.data === undefined) {
    return data === undefined || (isRecord(data) && Object.keys(data).length === 0)
      ? []
      : [
          {
            path: '$',
            kind: 'type',
            message: `event '${event}' carries no data`,
            expected: 'null',
          },
        ];
  }
  return validateValue(tables, spec.data, data ?? {}, options);
}

/**
 * Which alternative of an alternate type a value belongs to (by JSON type, as QEMU decides),
 * or `undefined` when none accepts it.
 */
export function alternateBranch(
  tables: SchemaTables,
  alternate: string,
  value: unknown,
): TypeRefString | undefined {
  const def = tables.types[alternate];
  if (def?.kind !== 'alternate')
    throw new TypeError(`'${alternate}' is not an alternate type in the tables`);
  return new Checker(tables, {}).alternativeFor(def.alternatives, value);
}
