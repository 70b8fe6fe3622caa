/**
 * Capability questions answered from the live schema, with a clear error for questions no
 * QEMU could answer "yes" to: a name, argument or value that neither the connected QEMU nor
 * any version the bindings know has (a typo from untyped JavaScript; TypeScript rejects it
 * at compile time). The merged availability data is loaded only when the live answer is
 * "no", so the common path costs nothing.
 */
import { type AvailabilityTables, availabilityOf } from '@qmpkit/qapi/runtime-v1';
import { QmpUnknownCapabilityError } from '../errors.js';
import type { SchemaIndex, UntypedSchemaQuery } from './schema.js';

let loading: Promise<AvailabilityTables> | undefined;

/** The merged view's availability tables (loaded once, on the first "no"). */
export function loadAvailability(): Promise<AvailabilityTables> {
  loading ??= import('@qmpkit/qapi/merged').then((m) => m.availability);
  return loading;
}

/** Arguments per command and every enum value of any known version, for quick lookups. */
interface KnownIndex {
  /** command → `member` and `case.member` keys. */
  readonly arguments: Map<string, Set<string>>;
  readonly values: Set<string>;
}

const indexes = new WeakMap<AvailabilityTables, KnownIndex>();

function indexOf(tables: AvailabilityTables): KnownIndex {
  let index = indexes.get(tables);
  if (index) return index;
  const args = new Map<string, Set<string>>();
  for (const key of Object.keys(tables.arguments)) {
    const dot = key.indexOf('.');
    const command = key.slice(0, dot);
    let set = args.get(command);
    if (!set) {
      set = new Set();
      args.set(command, set);
    }
    const rest = key.slice(dot + 1);
    set.add(rest);
    // `case.member`: the member is also known "in some branch".
    const inner = rest.indexOf('.');
    if (inner >= 0) set.add(rest.slice(inner + 1));
  }
  const values = new Set<string>();
  for (const key of Object.keys(tables.values)) values.add(key.slice(key.indexOf('.') + 1));
  index = { arguments: args, values };
  indexes.set(tables, index);
  return index;
}

/** One capability question in the shape the checks need. */
export interface CapabilityQuestion {
  readonly name: string;
  /** An argument of command `name`: `member`, or `case.member` for one union branch. */
  readonly argument?: string | undefined;
  /** Is `argument` in the connected QEMU's schema (regardless of the rest of the question)? */
  readonly argumentLive?: boolean;
  /** Enum values / branch tags asked about, each with whether the live schema has it. */
  readonly values?: readonly { readonly value: string; readonly live: boolean }[];
}

/**
 * Throws `QmpUnknownCapabilityError` when part of the question is known neither to the
 * connected QEMU nor to any version in `tables`. Arguments are checked for commands only
 * (the bindings record argument availability per command); values against every enum of
 * every known version (conservative: a value any enum has is never rejected).
 */
export function checkKnown(
  schema: SchemaIndex,
  tables: AvailabilityTables,
  question: CapabilityQuestion,
): void {
  const { name } = question;
  const live = schema.command(name) !== undefined || schema.event(name) !== undefined;
  const isCommand = availabilityOf(tables, 'commands', name) !== undefined;
  const known = isCommand || availabilityOf(tables, 'events', name) !== undefined;
  if (!live && !known)
    throw new QmpUnknownCapabilityError({
      kind: 'name',
      capability: name,
      knownVersions: tables.versions,
    });
  const index = indexOf(tables);
  const argument = question.argument;
  if (
    argument !== undefined &&
    isCommand &&
    question.argumentLive !== true &&
    !(index.arguments.get(name)?.has(argument) ?? false)
  )
    throw new QmpUnknownCapabilityError({
      kind: 'argument',
      capability: `${name}.${argument}`,
      knownVersions: tables.versions,
    });
  for (const { value, live: valueLive } of question.values ?? []) {
    if (!valueLive && !index.values.has(value))
      throw new QmpUnknownCapabilityError({
        kind: 'value',
        capability: value,
        knownVersions: tables.versions,
      });
  }
}

/** The question an untyped `has` query asks (`inner` and features are not checked). */
function questionOf(
  schema: SchemaIndex,
  name: string,
  query: UntypedSchemaQuery | undefined,
): CapabilityQuestion {
  if (query === undefined) return { name };
  const member = query.member;
  const values: { value: string; live: boolean }[] = [];
  if (member !== undefined && typeof query.value === 'string')
    values.push({ value: query.value, live: schema.query(name, { member, value: query.value }) });
  for (const [key, wanted] of Object.entries(query.when ?? {})) {
    if (typeof wanted === 'string')
      values.push({ value: wanted, live: schema.query(name, { when: { [key]: wanted } }) });
  }
  return {
    name,
    argument: member,
    argumentLive: member !== undefined && schema.query(name, { member }),
    values,
  };
}

/**
 * `schema.query`, throwing `QmpUnknownCapabilityError` when the answer is "no" because
 * nothing known has the name, argument or value (see `checkKnown`).
 */
export async function askSchema(
  schema: SchemaIndex,
  name: string,
  query: UntypedSchemaQuery | undefined,
  availability: () => Promise<AvailabilityTables> = loadAvailability,
): Promise<boolean> {
  if (schema.query(name, query)) return true;
  checkKnown(schema, await availability(), questionOf(schema, name, query));
  return false;
}
