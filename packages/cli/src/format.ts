/** Output formats shared by the subcommands. */
import type { ValidationProblem } from '@qmpkit/qapi/runtime-v1';
import type { QmpTimestamp } from '@qmpkit/transport';
import type { Paint } from './io.js';
import { type ArgumentModel, isRecord } from './schema/model.js';
import { didYouMean } from './suggest.js';

export function formatJson(value: unknown, pretty: boolean): string {
  return JSON.stringify(value, null, pretty ? 2 : undefined) ?? 'null';
}

/** An event as QEMU sent it (`{"event", "data", "timestamp"}`), one JSON text. */
export function formatEvent(
  event: { readonly event: string; readonly data: unknown; readonly timestamp: QmpTimestamp },
  pretty: boolean,
): string {
  const wire =
    event.data === undefined
      ? { event: event.event, timestamp: event.timestamp }
      : { event: event.event, data: event.data, timestamp: event.timestamp };
  return formatJson(wire, pretty);
}

/** `$.a[0].b` → `['a', '0', 'b']`. */
export function pathSegments(path: string): string[] {
  return path
    .replace(/^\$\.?/, '')
    .replace(/\[(\d+)\]/g, '.$1')
    .split('.')
    .filter((s) => s !== '');
}

/**
 * Validation problems, one per line (`  $.path: message`), with a suggestion for unknown
 * keys and enum values when one is close.
 */
export function formatProblems(
  problems: readonly ValidationProblem[],
  context: {
    model: ArgumentModel;
    argType: string | undefined;
    args: unknown;
    pathPrefix?: string;
  },
  paint: Paint,
): string {
  const lines: string[] = [];
  for (const problem of problems) {
    const segments = pathSegments(problem.path);
    let hint = '';
    if (problem.kind === 'unexpected') {
      const parent = segments.slice(0, -1);
      let parentValue: unknown = context.args;
      for (const s of parent) parentValue = isRecord(parentValue) ? parentValue[s] : undefined;
      const members = context.model.members(
        parent.length === 0
          ? context.argType
          : context.model.typeAt(context.argType, parent, context.args),
        parentValue,
      ).members;
      hint = didYouMean(
        segments.at(-1) ?? '',
        members.map((m) => m.name),
      );
    } else if (problem.kind === 'enum') {
      let value: unknown = context.args;
      for (const s of segments)
        value =
          isRecord(value) || Array.isArray(value)
            ? (value as Record<string, unknown>)[s]
            : undefined;
      const type = context.model.typeAt(context.argType, segments, context.args);
      if (typeof value === 'string') hint = didYouMean(value, context.model.literals(type));
    }
    const path = context.pathPrefix
      ? problem.path.replace(/^\$/, context.pathPrefix)
      : problem.path;
    lines.push(`  ${paint('bold', path)}: ${problem.message}${hint ? ` — ${hint}` : ''}`);
  }
  return lines.join('\n');
}
