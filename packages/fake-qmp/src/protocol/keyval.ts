/**
 * QEMU's key=value option syntax (`util/keyval.c`), as the storage daemon reads `--blockdev`,
 * `--object`, `--export` and `--nbd-server` when the value does not start with `{`:
 * `driver=qcow2,file.driver=file,file.filename=a,,b.qcow2` — dotted keys nest, `,,` is a
 * literal comma, an optional implied key names the first bare value (`--export nbd,id=e0`),
 * keys made of digits make lists (`bitmaps.0=a,bitmaps.1=b`). Every value is a string; QEMU's
 * keyval input visitor then reads each one as the schema type of its member, which
 * `keyvalToJson` does with the schema tables (integers, sizes with suffixes, booleans
 * `on`/`off`/`yes`/`no`/`true`/`false`, numbers; unions by their tag, alternates by shape).
 * Pure: no I/O.
 */
import type { SchemaTables, TypeRefString } from '@qmpkit/qapi/runtime-v1';
import type { IntegerMembers } from './visitor.js';

/** A key=value string QEMU's keyval parser refuses (its message). */
export class KeyvalError extends Error {
  override readonly name = 'KeyvalError' as const;
}

export const isKeyvalError = (e: unknown): e is KeyvalError =>
  typeof e === 'object' && e !== null && (e as { name?: unknown }).name === 'KeyvalError';

type Tree = { [key: string]: Tree | string };

function isTree(value: Tree | string | undefined): value is Tree {
  return typeof value === 'object';
}

/** Parses `text` into a tree of strings (before lists are made). */
function parseTree(text: string, impliedKey: string | undefined): Tree {
  const root: Tree = {};
  let pos = 0;
  let first = true;
  while (pos < text.length) {
    // The key: up to '=' or ',' (a key holds no ',').
    let end = pos;
    while (end < text.length && text[end] !== '=' && text[end] !== ',') end++;
    let key: string;
    if (text[end] === '=') {
      key = text.slice(pos, end);
      pos = end + 1;
    } else if (first && impliedKey !== undefined) {
      key = impliedKey;
    } else {
      const shown = text.slice(pos, end);
      throw new KeyvalError(
        shown === ''
          ? 'Expected parameter before \u0027,\u0027'
          : `Expected '=' after parameter '${shown}'`,
      );
    }
    if (key === '' || key.split('.').some((f) => f === ''))
      throw new KeyvalError(`Invalid parameter '${key}'`);
    // The value: up to a single ',' (',,' is a comma).
    let value = '';
    while (pos < text.length) {
      if (text[pos] === ',') {
        if (text[pos + 1] === ',') {
          value += ',';
          pos += 2;
          continue;
        }
        break;
      }
      value += text[pos++];
    }
    pos++; // the separating ','
    first = false;
    const fragments = key.split('.');
    let node = root;
    for (const [i, fragment] of fragments.entries()) {
      const last = i === fragments.length - 1;
      const here = node[fragment];
      if (last) {
        if (isTree(here)) throw new KeyvalError(`Parameter '${key}' used inconsistently`);
        node[fragment] = value;
      } else {
        if (typeof here === 'string')
          throw new KeyvalError(
            `Parameter '${fragments.slice(0, i + 1).join('.')}' used inconsistently`,
          );
        if (here === undefined) {
          const child: Tree = {};
          node[fragment] = child;
          node = child;
        } else node = here;
      }
    }
  }
  return root;
}

type KeyvalValue = string | KeyvalValue[] | { [key: string]: KeyvalValue };

/** Turns subtrees whose keys are all digits into lists (QEMU's `keyval_listify`). */
function listify(tree: Tree, path: string): KeyvalValue {
  const keys = Object.keys(tree);
  const convert = (k: string) => {
    const v = tree[k]!;
    return isTree(v) ? listify(v, path === '' ? k : `${path}.${k}`) : v;
  };
  if (keys.length > 0 && keys.every((k) => /^\d+$/.test(k))) {
    const indexes = keys.map(Number).sort((a, b) => a - b);
    indexes.forEach((n, i) => {
      if (n !== i) throw new KeyvalError(`Parameter '${path}.${i}' missing`);
    });
    return indexes.map((n) => convert(String(n)));
  }
  return Object.fromEntries(keys.map((k) => [k, convert(k)]));
}

/** QEMU's keyval parse: a dict of strings, dicts and lists. */
export function parseKeyval(text: string, impliedKey?: string): Record<string, KeyvalValue> {
  const value = listify(parseTree(text, impliedKey), '');
  if (Array.isArray(value) || typeof value === 'string')
    throw new KeyvalError('Invalid parameter: a top-level list');
  return value;
}

const INTEGER_TYPES = new Set([
  'int',
  'int8',
  'int16',
  'int32',
  'int64',
  'uint8',
  'uint16',
  'uint32',
  'uint64',
]);

const SIZE_UNITS: Readonly<Record<string, number>> = {
  '': 1,
  b: 1,
  k: 2 ** 10,
  m: 2 ** 20,
  g: 2 ** 30,
  t: 2 ** 40,
  p: 2 ** 50,
  e: 2 ** 60,
};

function scalar(type: string, value: string, name: string): unknown {
  if (INTEGER_TYPES.has(type)) {
    if (!/^[+-]?(0x[0-9a-f]+|\d+)$/i.test(value))
      throw new KeyvalError(`Parameter '${name}' expects integer`);
    return Number(value);
  }
  if (type === 'size') {
    const m = /^(\d+(?:\.\d+)?)([bkmgtpe]?)$/i.exec(value);
    if (!m) throw new KeyvalError(`Parameter '${name}' expects a non-negative number below 2^64`);
    return Math.round(Number(m[1]) * (SIZE_UNITS[(m[2] ?? '').toLowerCase()] ?? 1));
  }
  if (type === 'bool') {
    if (['on', 'yes', 'true'].includes(value)) return true;
    if (['off', 'no', 'false'].includes(value)) return false;
    throw new KeyvalError(`Parameter '${name}' expects 'on' or 'off'`);
  }
  if (type === 'number') {
    const n = Number(value);
    if (value.trim() === '' || Number.isNaN(n))
      throw new KeyvalError(`Parameter '${name}' expects number`);
    return n;
  }
  return value; // str, enums, any
}

/** Reads keyval strings as the schema type `type` (QEMU's keyval input visitor). */
export function keyvalToJson(
  tables: SchemaTables,
  type: TypeRefString,
  value: KeyvalValue,
  name = '',
  integers: IntegerMembers = {},
): unknown {
  const recurse = (t: TypeRefString, v: KeyvalValue, n: string) =>
    keyvalToJson(tables, t, v, n, integers);
  if (type.startsWith('[')) {
    const element = type.slice(1, -1);
    if (!Array.isArray(value)) throw new KeyvalError(`Parameter '${name}' is not a list`);
    return value.map((v, i) => recurse(element, v, `${name}.${i}`));
  }
  const def = tables.types[type];
  if (def === undefined || def.kind === 'enum') {
    if (typeof value !== 'string') throw new KeyvalError(`Parameter '${name}' is not a scalar`);
    return scalar(type, value, name);
  }
  if (def.kind === 'alternate') {
    // A dict picks the object branch; a string the scalar one (QEMU's keyval visitor sees
    // only strings, so the first scalar branch that reads it wins).
    if (typeof value === 'object' && !Array.isArray(value)) {
      const branch = def.alternatives.find((a) => tables.types[a]?.kind === 'object');
      if (branch !== undefined) return recurse(branch, value, name);
    } else if (typeof value === 'string') {
      for (const a of def.alternatives) {
        if (tables.types[a]?.kind === 'object') continue;
        try {
          return recurse(a, value, name);
        } catch {
          // not this branch: try the next
        }
      }
    }
    throw new KeyvalError(`Parameter '${name}' has no fitting alternative`);
  }
  if (typeof value !== 'object' || Array.isArray(value))
    throw new KeyvalError(`Parameter '${name}' is not a dict`);
  // Members in QEMU's visiting order (base, then the branch), so the first bad value reported
  // is the one QEMU reports; each typed by the sized integer the source names, if any.
  const members = def.members.map((m) => ({ ...m, type: integers[type]?.[m.name] ?? m.type }));
  if (def.tag !== undefined && def.variants !== undefined) {
    const tag = value[def.tag];
    const branch = typeof tag === 'string' ? def.variants[tag] : undefined;
    const branchDef = branch === undefined ? undefined : tables.types[branch];
    if (branch !== undefined && branchDef?.kind === 'object')
      members.push(
        ...branchDef.members.map((m) => ({ ...m, type: integers[branch]?.[m.name] ?? m.type })),
      );
  }
  const out: Record<string, unknown> = {};
  for (const member of members) {
    const v = value[member.name];
    if (v !== undefined)
      out[member.name] = recurse(
        member.type,
        v,
        name === '' ? member.name : `${name}.${member.name}`,
      );
  }
  // Keys the schema lacks pass through: the schema check after this reports them as QEMU does.
  for (const [key, v] of Object.entries(value)) if (!(key in out)) out[key] = v;
  return out;
}
