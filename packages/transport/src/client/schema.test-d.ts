/**
 * The SchemaInfo shape the one `query-qmp-schema` reader (`@qmpkit/schema`) checks is not a
 * second copy of QAPI's type: every version's generated `SchemaInfo` must be assignable to it,
 * so a QEMU whose introspection the bindings describe is always readable.
 */
import type { SchemaInfo as Qemu42 } from '@qmpkit/qapi/qemu-4.2';
import type { SchemaInfo as Qemu72 } from '@qmpkit/qapi/qemu-7.2';
import { expectTypeOf, it } from 'vitest';
import type { SchemaInfo } from './schema.js';

it("each version's generated SchemaInfo is assignable to the reader's SchemaInfo", () => {
  expectTypeOf<Qemu42>().toExtend<SchemaInfo>();
  expectTypeOf<Qemu72>().toExtend<SchemaInfo>();
});
