import type { ChangeKind, ChangeTarget, SchemaChange } from '@qmpkit/schema';
import { Option } from 'commander';
import { type Paint, painter, wantsColor } from '../io.js';
import { type LoadedSchema, loadSchemaPair, readSchemaInput } from '../schema/inputs.js';
import { type CliCommand, positiveInt } from './command.js';

interface DiffFlags {
  json?: boolean;
  exitCode?: boolean;
  timeout?: number;
}

const GROUPS: readonly [ChangeTarget, string][] = [
  ['command', 'Commands'],
  ['argument', 'Command arguments'],
  ['return-type', 'Return types'],
  ['return-member', 'Return members'],
  ['event', 'Events'],
  ['event-member', 'Event members'],
  ['enum-value', 'Enum values'],
  ['branch', 'Union branches'],
  ['type', 'Types'],
  ['member', 'Type members'],
];

const KIND_STYLE: Record<ChangeKind, Parameters<Paint>[0]> = {
  added: 'green',
  removed: 'red',
  'made-optional': 'yellow',
  'made-required': 'yellow',
  'type-changed': 'yellow',
  deprecated: 'magenta',
  undeprecated: 'magenta',
};

function describeSide(side: LoadedSchema): string {
  return `${side.input} (${side.kind}${side.qemuVersion ? `, QEMU ${side.qemuVersion}` : ''})`;
}

/** The human report: grouped by what changed, one `formatChange` line each. */
export function formatDiff(
  a: LoadedSchema,
  b: LoadedSchema,
  changes: readonly SchemaChange[],
  formatChange: (change: SchemaChange) => string,
  paint: Paint,
): string {
  const lines = [paint('bold', `--- ${describeSide(a)}`), paint('bold', `+++ ${describeSide(b)}`)];
  if (changes.length === 0) return [...lines, 'no changes'].join('\n');
  for (const [target, title] of GROUPS) {
    const group = changes
      .filter((c) => c.target === target)
      .sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
    if (group.length === 0) continue;
    lines.push('', paint('bold', `${title} (${group.length})`));
    for (const change of group)
      lines.push(`  ${paint(KIND_STYLE[change.kind], formatChange(change))}`);
  }
  const counts = new Map<ChangeKind, number>(
    (Object.keys(KIND_STYLE) as ChangeKind[]).map((kind) => [kind, 0]),
  );
  for (const c of changes) counts.set(c.kind, (counts.get(c.kind) ?? 0) + 1);
  for (const [kind, n] of counts) if (n === 0) counts.delete(kind);
  lines.push(
    '',
    `${changes.length} change${changes.length === 1 ? '' : 's'}: ${[...counts]
      .map(([kind, n]) => `${n} ${kind}`)
      .join(', ')}`,
  );
  return lines.join('\n');
}

export const schemaCommand: CliCommand = {
  name: 'schema',
  register(program, context) {
    const schema = program.command('schema').description('compare QAPI schemas of QEMU versions');
    schema
      .command('diff')
      .description(
        'list commands, arguments, events, enum values … added, removed or deprecated between two schemas',
      )
      .argument(
        '<a>',
        'before: a QEMU version (6.2), query-qmp-schema JSON, schemas/qemu-X.Y dir, .replies file, or an address',
      )
      .argument('<b>', 'after: same kinds')
      .option('--json', 'print {a, b, changes} as JSON')
      .option('--exit-code', 'exit 1 when there are changes (like git diff --exit-code)')
      .addOption(
        new Option('--timeout <ms>', 'connect timeout for live inputs').argParser(
          positiveInt('--timeout'),
        ),
      )
      .action(async (a: string, b: string, flags: DiffFlags) => {
        const { io } = context;
        const connect = flags.timeout !== undefined ? { timeout: flags.timeout } : {};
        const rawA = await readSchemaInput(a, io, connect);
        const rawB = await readSchemaInput(b, io, connect);
        const [left, right] = await loadSchemaPair(rawA, rawB);
        const { diffSchemas, formatChange } = await import('@qmpkit/schema');
        const changes = diffSchemas(left.schema, right.schema);
        if (flags.json) {
          const side = (s: LoadedSchema) => ({
            input: s.input,
            kind: s.kind,
            qemuVersion: s.qemuVersion ?? null,
            realTypeNames: s.named,
          });
          io.stdout.write(
            `${JSON.stringify({ a: side(left), b: side(right), changes }, null, 2)}\n`,
          );
        } else {
          const paint = painter(wantsColor(io.stdout, io.env));
          io.stdout.write(`${formatDiff(left, right, changes, formatChange, paint)}\n`);
        }
        context.exit(flags.exitCode && changes.length > 0 ? 1 : 0);
      });
  },
};
