/**
 * Puts the keys of a reply or event payload in QAPI member order (what QEMU's output
 * visitor inserts first), so the QDict order the writer derives resolves hash-bucket
 * collisions exactly like QEMU, whatever order a handler built its objects in.
 */

import type { SchemaTables, TypeRefString } from '@qmpkit/qapi/runtime-v1';
import { arrayElement } from '@qmpkit/schema/info';
import { isDict, RawJson } from '../json/values.js';

export function canonicalize(
  tables: SchemaTables,
  type: TypeRefString | undefined,
  value: unknown,
): unknown {
  if (type === undefined || value === null || typeof value !== 'object' || value instanceof RawJson)
    return value;
  const element = arrayElement(type);
  if (element !== undefined) {
    if (!Array.isArray(value)) return value;
    return value.map((v: unknown) => canonicalize(tables, element, v));
  }
  const def = tables.types[type];
  if (!def) return value;
  if (def.kind === 'alternate') {
    const branch = def.alternatives.find((a) => {
      const d = tables.types[a];
      return isDict(value)
        ? d?.kind === 'object'
        : Array.isArray(value)
          ? arrayElement(a) !== undefined
          : false;
    });
    return canonicalize(tables, branch, value);
  }
  if (def.kind !== 'object' || !isDict(value)) return value;
  const out: Record<string, unknown> = {};
  const visit = (members: readonly { name: string; type: string }[]) => {
    for (const m of members) {
      if (Object.hasOwn(value, m.name) && !Object.hasOwn(out, m.name))
        out[m.name] = canonicalize(tables, m.type, value[m.name]);
    }
  };
  visit(def.members);
  if (def.tag !== undefined && def.variants) {
    const tag = value[def.tag];
    const variant = typeof tag === 'string' ? def.variants[tag] : undefined;
    const branch = variant !== undefined ? tables.types[variant] : undefined;
    if (branch?.kind === 'object') visit(branch.members);
  }
  for (const key of Object.keys(value)) if (!Object.hasOwn(out, key)) out[key] = value[key];
  return out;
}
