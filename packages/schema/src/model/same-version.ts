import { CodegenError } from '../errors.js';
import { diffSchemas, formatChange, type SchemaChange } from './diff.js';
import type { Condition, Schema } from './ir.js';

/**
 * The `if` condition the QAPI source puts on the element a change is about, if any: the
 * command, event, type, member, enum value or branch, or the definition it belongs to.
 */
export function conditionOf(source: Schema, change: SchemaChange): Condition | undefined {
  const path = change.path;
  switch (change.target) {
    case 'command':
      return source.commands.get(path)?.if;
    case 'event':
      return source.events.get(path)?.if;
    case 'type':
      return source.types.get(path)?.if;
    case 'enum-value': {
      const dot = path.lastIndexOf('.');
      const def = source.types.get(path.slice(0, dot));
      if (def?.kind !== 'enum') return undefined;
      return def.values.find((v) => v.name === path.slice(dot + 1))?.if ?? def.if;
    }
    case 'branch': {
      const m = /^(.*)\[(.*)\]$/.exec(path);
      const def = m ? source.types.get(m[1]!) : undefined;
      if (def?.kind !== 'union') return undefined;
      return def.branches.find((b) => b.case === m![2])?.if ?? def.if;
    }
    default:
      return undefined;
  }
}

/**
 * Two inputs that claim the same QEMU version (e.g. our capture of Debian's 7.2 and libvirt's
 * recording of 7.2) must describe the same schema. Differences explained by an `if`
 * condition of the version's QAPI source are build-configuration differences and allowed;
 * anything else throws a CodegenError listing it.
 */
export function assertSameVersion(
  version: string,
  a: { label: string; schema: Schema },
  b: { label: string; schema: Schema },
  source?: Schema,
): SchemaChange[] {
  const changes = diffSchemas(a.schema, b.schema);
  const explained = (c: SchemaChange) =>
    (c.kind === 'added' || c.kind === 'removed') &&
    source !== undefined &&
    conditionOf(source, c) !== undefined;
  const unexplained = changes.filter((c) => !explained(c));
  if (unexplained.length > 0) {
    const shown = unexplained.slice(0, 20).map((c) => `  ${formatChange(c)}`);
    const more = unexplained.length > 20 ? [`  … and ${unexplained.length - 20} more`] : [];
    throw new CodegenError(
      `two inputs claim QEMU ${version} with different content (${a.label} vs ${b.label}):\n${[...shown, ...more].join('\n')}`,
    );
  }
  return changes;
}
