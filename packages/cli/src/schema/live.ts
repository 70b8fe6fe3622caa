/**
 * Runtime schema tables built from a connected QEMU's own `query-qmp-schema`, so the shell
 * completes and validates against exactly what that binary accepts, whatever its version.
 * The tables have the format of the generated bindings (`@qmpkit/qapi/runtime-v1`), so the
 * same `validateArgs` checks them and reports JSON paths.
 */
import type { SchemaTables } from '@qmpkit/qapi/runtime-v1';
import type { SchemaInfo } from '@qmpkit/schema/info';

/**
 * Commands declared `'gen': false` in some QEMU version: QEMU does not check their arguments
 * against the schema (device properties go straight to the device). Introspection does not
 * say so, hence the list. A command counts as open only while its argument type is a plain
 * object: once QEMU typed it as a union (`netdev_add` since 5.2-ish `Netdev`, `object-add`
 * since 6.0 `ObjectOptions`), QEMU checks it and so do we.
 */
export const OPEN_ARGUMENT_COMMANDS: readonly string[] = ['device_add', 'netdev_add', 'object-add'];

/** Which of `OPEN_ARGUMENT_COMMANDS` this schema leaves open (argument type not a union). */
export function openCommands(list: readonly SchemaInfo[]): string[] {
  const unions = new Set(
    list.filter((e) => e['meta-type'] === 'object' && e.variants !== undefined).map((e) => e.name),
  );
  return list
    .filter((e) => e['meta-type'] === 'command')
    .filter((e) => OPEN_ARGUMENT_COMMANDS.includes(e.name) && !unions.has(e['arg-type']))
    .map((e) => e.name);
}

/**
 * Builds validation tables from a `query-qmp-schema` result. `label` names the source in
 * errors (`unix:/run/qmp.sock (query-qmp-schema)`).
 */
export async function tablesFromSchemaList(
  list: unknown,
  qemuVersion: string,
  label: string,
): Promise<SchemaTables> {
  // The schema subpath does not load the TypeScript compiler.
  const { buildTables, readIntrospection, readSchemaInfo } = await import('@qmpkit/schema');
  const schema = readIntrospection({
    file: label,
    text: JSON.stringify(list),
    qemuVersion,
    names: { types: {}, openArguments: openCommands(readSchemaInfo(label, list)) },
  });
  return buildTables(schema, qemuVersion);
}
