/**
 * Turns `key=value` words (or one JSON object) into QMP arguments, coercing values by the
 * schema type at each key: `id=123` stays a string when the member is `str`, becomes a number
 * for `int`, `on`/`off`/`true`/`false` become booleans for `bool`, `a,b` becomes a list for
 * `[str]`. Nested keys use dots (`options.driver=null-co`, `actions.0.type=…`). A quoted
 * value is always a string; `{…}`/`[…]` values are JSON. Without a schema (or for keys the
 * schema does not have) values are guessed like QEMU's qmp-shell: JSON if it parses, else a
 * string — validation then reports the unknown key.
 */
import { arrayElement } from '@qmpkit/schema/info';
import { ArgumentSyntaxError } from '../errors.js';
import { type ArgumentModel, isIntegerType, isRecord } from '../schema/model.js';

export interface Assignment {
  readonly key: string;
  readonly segments: readonly string[];
  readonly raw: string;
}

/** Splits `a.b=raw` (the first `=` separates; keys never contain `=`). */
export function splitAssignment(word: string): Assignment {
  const eq = word.indexOf('=');
  if (eq <= 0) {
    throw new ArgumentSyntaxError(
      word,
      `'${word}': expected key=value (or a single JSON object as the only argument)`,
    );
  }
  const key = word.slice(0, eq);
  const segments = key.split('.');
  if (segments.some((s) => s === ''))
    throw new ArgumentSyntaxError(word, `'${key}': empty key segment`);
  return { key, segments, raw: word.slice(eq + 1) };
}

function parseJson(word: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ArgumentSyntaxError(
      word,
      `'${word}': invalid JSON (${error instanceof Error ? error.message : String(error)})`,
    );
  }
}

/** qmp-shell's guess for values of unknown type: JSON when it parses, else the text. */
function guess(raw: string): unknown {
  if (
    raw === 'true' ||
    raw === 'false' ||
    raw === 'null' ||
    /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(raw)
  )
    return JSON.parse(raw);
  return raw;
}

const TRUE = new Set(['true', 'on', 'yes']);
const FALSE = new Set(['false', 'off', 'no']);

function toNumber(raw: string, integer: boolean): number | undefined {
  const text = raw.trim();
  if (text === '') return undefined;
  if (integer) {
    if (/^[-+]?\d+$/.test(text)) return Number(text);
    if (/^0x[0-9a-f]+$/i.test(text)) return Number.parseInt(text, 16);
    return undefined;
  }
  const n = Number(text);
  return Number.isFinite(n) ? n : undefined;
}

/** Coerces unquoted, non-JSON text to the type `ref` (leaves it a string when it cannot). */
export function coerce(
  raw: string,
  ref: string | undefined,
  model: ArgumentModel | undefined,
): unknown {
  if (ref === undefined || model === undefined) return guess(raw);
  const element = arrayElement(ref);
  if (element !== undefined) {
    if (raw === '') return [];
    return raw.split(',').map((part) => coerce(part, element, model));
  }
  if (isIntegerType(ref) || ref === 'number') return toNumber(raw, ref !== 'number') ?? raw;
  switch (ref) {
    case 'str':
    case 'QType':
      return raw;
    case 'bool':
      return TRUE.has(raw) ? true : FALSE.has(raw) ? false : raw;
    case 'null':
      return raw === 'null' ? null : raw;
    case 'any':
      return guess(raw);
  }
  const def = model.tables.types[ref];
  if (def?.kind !== 'alternate') return raw; // enums are strings; objects need JSON or dots
  const alts = def.alternatives;
  // An enum alternative naming the text exactly wins (OnOffAuto's 'on' is not a bool).
  for (const alt of alts) {
    const altDef = model.tables.types[alt];
    if (altDef?.kind === 'enum' && altDef.values.includes(raw)) return raw;
  }
  if (raw === 'null' && alts.includes('null')) return null;
  if ((raw === 'true' || raw === 'false') && alts.includes('bool')) return raw === 'true';
  for (const alt of alts) {
    if (isIntegerType(alt) || alt === 'number') {
      const n = toNumber(raw, alt !== 'number');
      if (n !== undefined) return n;
    }
  }
  return raw;
}

/**
 * The value of one `key=raw`: quoted → string; `{`/`[` → JSON (unless the schema says the
 * key is a plain string); otherwise coerced to the schema type.
 */
export function parseValue(
  word: string,
  raw: string,
  ref: string | undefined,
  model: ArgumentModel | undefined,
): unknown {
  if (raw.length >= 2 && raw.startsWith('"') && raw.endsWith('"')) {
    const value = parseJson(word, raw);
    if (typeof value !== 'string')
      throw new ArgumentSyntaxError(word, `'${word}': bad quoted string`);
    return value;
  }
  if (raw.length >= 2 && raw.startsWith("'") && raw.endsWith("'")) return raw.slice(1, -1);
  const isString =
    ref === 'str' || (ref !== undefined && model?.tables.types[ref]?.kind === 'enum');
  if (!isString && (raw.startsWith('{') || raw.startsWith('['))) return parseJson(word, raw);
  return coerce(raw, ref, model);
}

function setPath(
  target: Record<string, unknown>,
  assignment: Assignment,
  value: unknown,
  wantsArray: (depth: number) => boolean,
): void {
  const { segments, key } = assignment;
  let node: Record<string, unknown> | unknown[] = target;
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!;
    const last = i === segments.length - 1;
    const slot = Array.isArray(node) ? Number(segment) : segment;
    if (Array.isArray(node) && !/^\d+$/.test(segment))
      throw new ArgumentSyntaxError(
        key,
        `'${key}': '${segments.slice(0, i).join('.')}' is a list; use a number for '${segment}'`,
      );
    const existing: unknown = Array.isArray(node) ? node[slot as number] : node[slot as string];
    if (last) {
      if (existing !== undefined)
        throw new ArgumentSyntaxError(
          key,
          `'${key}' is given twice (or also as part of a JSON value)`,
        );
      if (Array.isArray(node)) node[slot as number] = value;
      else node[slot as string] = value;
      return;
    }
    let next = existing;
    if (next === undefined) {
      next = wantsArray(i + 1) && /^\d+$/.test(segments[i + 1]!) ? [] : {};
      if (Array.isArray(node)) node[slot as number] = next;
      else node[slot as string] = next;
    } else if (!isRecord(next) && !Array.isArray(next)) {
      throw new ArgumentSyntaxError(
        key,
        `'${key}': '${segments.slice(0, i + 1).join('.')}' already has a value that is not an object`,
      );
    }
    node = next as Record<string, unknown> | unknown[];
  }
}

/**
 * The words' raw texts arranged by key path (`{ driver: 'qcow2', file: { filename: … } }`),
 * ignoring malformed words: what is needed to pick union branches while typing.
 */
export function previewOf(words: readonly string[]): Record<string, unknown> {
  const preview: Record<string, unknown> = {};
  for (const word of words) {
    try {
      const a = splitAssignment(word);
      const quoted = /^(["']).*\1$/.test(a.raw);
      setPath(preview, a, quoted ? a.raw.slice(1, -1) : a.raw, () => false);
    } catch {
      // Malformed or conflicting words are reported when the line is run.
    }
  }
  return preview;
}

/**
 * Builds the `arguments` object of a command from words (`undefined` when there are none).
 * `argType` is the command's argument type in `model` (omit both for schema-less guessing).
 */
export function buildArguments(
  words: readonly string[],
  model?: ArgumentModel,
  argType?: string,
): Record<string, unknown> | undefined {
  if (words.length === 0) return undefined;
  const first = words[0]!;
  if (words.length === 1 && first.startsWith('{')) {
    const value = parseJson(first, first);
    if (!isRecord(value))
      throw new ArgumentSyntaxError(first, 'the JSON arguments must be an object');
    return value;
  }
  const assignments = words.map((word) => {
    if (word.startsWith('{'))
      throw new ArgumentSyntaxError(
        word,
        'a JSON object must be the only argument; or use key=value words',
      );
    return { word, ...splitAssignment(word) };
  });
  // Union tags choose branches, and a tag may come after the keys of its branch: resolve
  // types against a preview holding every raw text first.
  const preview = previewOf(words);
  const args: Record<string, unknown> = {};
  for (const a of assignments) {
    const ref = model?.typeAt(argType, a.segments, preview);
    const value = parseValue(a.word, a.raw, ref, model);
    setPath(args, a, value, (depth) => {
      const at = model?.typeAt(argType, a.segments.slice(0, depth), preview);
      return at === undefined ? true : model?.element(at) !== undefined;
    });
  }
  return args;
}
