/**
 * `query-qmp-schema` as data: the SchemaInfo shape and its checked reader, shared by the IR
 * reader (`readIntrospection`), the transport's capability index, the fake server and the CLI.
 */
import { SchemaError } from '../errors.js';

export interface Featureful {
  readonly features?: readonly string[];
}
export interface SchemaInfoMember extends Featureful {
  readonly name: string;
  readonly type: string;
  readonly default?: unknown;
}
export interface SchemaInfoEnumMember extends Featureful {
  readonly name: string;
}
/**
 * One entry of `query-qmp-schema` (QAPI's `SchemaInfo`, qapi/introspect.json), as far as the
 * toolkit reads it. This is the reader's contract, not a copy of the bindings: it lists only
 * what `readSchemaInfo` checks, every QEMU version's generated `SchemaInfo` is assignable to it
 * (a type test in @qmpkit/transport keeps it so), and QEMU may send more.
 */
export type SchemaInfo =
  | (Featureful & {
      readonly name: string;
      readonly 'meta-type': 'builtin';
      readonly 'json-type': string;
    })
  | (Featureful & {
      readonly name: string;
      readonly 'meta-type': 'enum';
      readonly values: readonly string[];
      readonly members?: readonly SchemaInfoEnumMember[];
    })
  | (Featureful & {
      readonly name: string;
      readonly 'meta-type': 'array';
      readonly 'element-type': string;
    })
  | (Featureful & {
      readonly name: string;
      readonly 'meta-type': 'object';
      readonly members: readonly SchemaInfoMember[];
      readonly tag?: string;
      readonly variants?: readonly { readonly case: string; readonly type: string }[];
    })
  | (Featureful & {
      readonly name: string;
      readonly 'meta-type': 'alternate';
      readonly members: readonly { readonly type: string }[];
    })
  | (Featureful & {
      readonly name: string;
      readonly 'meta-type': 'command';
      readonly 'arg-type': string;
      readonly 'ret-type': string;
      readonly 'allow-oob'?: boolean;
    })
  | (Featureful & {
      readonly name: string;
      readonly 'meta-type': 'event';
      readonly 'arg-type': string;
    });

const META_TYPES = ['builtin', 'enum', 'array', 'object', 'alternate', 'command', 'event'] as const;

/** Line and column (1-based) of a character offset. */
function lineCol(text: string, offset: number): { line: number; col: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, col: offset - lineStart + 1 };
}

export function parseJson(file: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const position = /position (\d+)/.exec(message);
    const loc = position ? lineCol(text, Number(position[1])) : { line: 1, col: 1 };
    throw new SchemaError(
      { file, ...loc },
      `invalid JSON: ${message.replace(/ in JSON at position \d+.*$/, '')}`,
    );
  }
}

class EntryChecker {
  constructor(
    private readonly file: string,
    private readonly index: number,
    private readonly entry: Record<string, unknown>,
  ) {}

  fail(reason: string): never {
    const name = typeof this.entry.name === 'string' ? ` '${this.entry.name}'` : '';
    throw new SchemaError({ file: this.file }, `SchemaInfo entry #${this.index}${name}: ${reason}`);
  }

  string(key: string): string {
    const value = this.entry[key];
    if (typeof value !== 'string')
      this.fail(`'${key}' must be a string, got ${JSON.stringify(value) ?? 'nothing'}`);
    return value;
  }

  stringList(value: unknown, what: string): readonly string[] {
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'string'))
      this.fail(`${what} must be a list of strings`);
    return value as string[];
  }

  objectList(key: string): readonly Record<string, unknown>[] {
    const value = this.entry[key];
    if (
      !Array.isArray(value) ||
      !value.every((v) => typeof v === 'object' && v !== null && !Array.isArray(v))
    ) {
      this.fail(`'${key}' must be a list of objects`);
    }
    return value as Record<string, unknown>[];
  }
}

/**
 * The one `query-qmp-schema` reader: checks that a parsed value is a SchemaInfo list (or a
 * whole QMP reply holding one) and returns it typed. Throws `SchemaError` naming the entry.
 * `file` names the input in errors (a path, or e.g. `unix:/run/qmp.sock (query-qmp-schema)`).
 */
export function readSchemaInfo(file: string, value: unknown): SchemaInfo[] {
  let list = value;
  if (typeof list === 'object' && list !== null && !Array.isArray(list) && 'return' in list) {
    list = (list as { return: unknown }).return; // a whole QMP reply
  }
  if (!Array.isArray(list)) {
    throw new SchemaError(
      { file },
      'not a SchemaInfo list: expected a JSON array (the return value of query-qmp-schema)',
    );
  }
  if (list.length === 0)
    throw new SchemaError({ file }, 'not a SchemaInfo list: the array is empty');
  const seen = new Set<string>();
  list.forEach((raw, index) => {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      throw new SchemaError(
        { file },
        `SchemaInfo entry #${index}: expected an object, got ${JSON.stringify(raw)}`,
      );
    }
    const entry = raw as Record<string, unknown>;
    const check = new EntryChecker(file, index, entry);
    const name = check.string('name');
    const meta = check.string('meta-type');
    if (!(META_TYPES as readonly string[]).includes(meta))
      check.fail(`unknown meta-type '${meta}'`);
    if (entry.features !== undefined) check.stringList(entry.features, "'features'");
    const key = `${meta === 'command' || meta === 'event' ? meta : 'type'}:${name}`;
    if (seen.has(key)) check.fail('duplicate entry');
    seen.add(key);
    switch (meta) {
      case 'builtin':
        check.string('json-type');
        break;
      case 'enum':
        check.stringList(entry.values, "'values'");
        if (entry.members !== undefined) {
          for (const m of check.objectList('members')) {
            if (typeof m.name !== 'string') check.fail('enum member without a name');
          }
        }
        break;
      case 'array':
        check.string('element-type');
        break;
      case 'object':
        for (const m of check.objectList('members')) {
          if (typeof m.name !== 'string' || typeof m.type !== 'string')
            check.fail('object member needs string name and type');
          if (m.features !== undefined)
            check.stringList(m.features, `features of member '${String(m.name)}'`);
        }
        if (entry.tag !== undefined || entry.variants !== undefined) {
          check.string('tag');
          for (const v of check.objectList('variants')) {
            if (typeof v.case !== 'string' || typeof v.type !== 'string')
              check.fail('variant needs string case and type');
          }
        }
        break;
      case 'alternate':
        for (const m of check.objectList('members')) {
          if (typeof m.type !== 'string') check.fail('alternate member needs a string type');
        }
        break;
      case 'command':
        check.string('arg-type');
        check.string('ret-type');
        break;
      case 'event':
        check.string('arg-type');
        break;
    }
  });
  return list as SchemaInfo[];
}
