/**
 * What the version the fake imitates has, read from its schema tables: the model answers with
 * the members and enum values that version's QEMU has (7.2's `singlestep`, 10.0's `active`),
 * never by comparing version numbers.
 */
import type { SchemaTables } from '@qmpkit/qapi/runtime-v1';

/** The member names of object type `type` (empty when the version has no such type). */
export function membersOf(tables: SchemaTables, type: string): ReadonlySet<string> {
  const t = tables.types[type];
  return new Set(t?.kind === 'object' ? t.members.map((m) => m.name) : []);
}

/** The values of enum `type` in schema order (empty when the version has no such enum). */
export function enumValues(tables: SchemaTables, type: string): readonly string[] {
  const t = tables.types[type];
  return t?.kind === 'enum' ? t.values : [];
}

/** `value` without the members object type `type` does not have in this version. */
export function onlySchemaMembers<T extends Record<string, unknown>>(
  tables: SchemaTables,
  type: string,
  value: T,
): Partial<T> {
  const members = membersOf(tables, type);
  return Object.fromEntries(Object.entries(value).filter(([k]) => members.has(k))) as Partial<T>;
}

/** Whether command `command` takes argument `member` in this version. */
export function commandTakes(tables: SchemaTables, command: string, member: string): boolean {
  const args = tables.commands[command]?.args;
  return args !== undefined && membersOf(tables, args).has(member);
}
