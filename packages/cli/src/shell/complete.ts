/**
 * Tab completion for the shell, from the connected QEMU's schema: command names, argument
 * keys (nested with dots; a union's branch members once its tag is typed), and values of
 * enum/bool keys; in transaction mode action types and their keys; in HMP mode the command
 * names (and `info` topics) QEMU's own `help` lists. Pure: `(line, context) → [words, part]`,
 * the shape node:readline's `completer` returns.
 */
import { previewOf } from '../args/build.js';
import { tokenize } from '../args/tokenize.js';
import { type ArgumentModel, isRecord } from '../schema/model.js';

export type ShellMode = 'qmp' | 'hmp';

export interface CompletionContext {
  readonly mode: ShellMode;
  readonly model: ArgumentModel | undefined;
  /** Inside `transaction(` … `)` (QMP mode). */
  readonly inTransaction: boolean;
  /** Words the shell itself understands at the start of a line (QMP mode). */
  readonly builtins: readonly string[];
  /** HMP command names, and `info` topics, from QEMU's `help` output. */
  readonly hmp?: { readonly commands: readonly string[]; readonly info: readonly string[] };
}

export type Completion = [string[], string];

const sortUnique = (list: Iterable<string>) => [...new Set(list)].sort();

function finish(candidates: string[], part: string): Completion {
  const hits = sortUnique(candidates.filter((c) => c.startsWith(part)));
  // A single hit that is a whole word (not `key=` or `key.`) gets its separating space.
  if (hits.length === 1 && !/[=.(]$/.test(hits[0]!)) return [[`${hits[0]} `], part];
  return [hits, part];
}

/** The argument type of a transaction action, and whether its keys live under `data`. */
export function transactionActionType(
  model: ArgumentModel,
  action: string,
): { type: string | undefined; wrapped: boolean } | undefined {
  const element = model.element(model.typeAt(model.argType('transaction'), ['actions'], {}));
  const union = model.object(element);
  const variant = union?.variants?.[action];
  if (variant === undefined) return undefined;
  const branch = model.object(variant);
  const data = branch?.members.find((m) => m.name === 'data');
  if (branch && branch.members.length === 1 && data) return { type: data.type, wrapped: true };
  return { type: variant, wrapped: false };
}

/** Action types `transaction` accepts (the tag values of its actions' union). */
export function transactionActions(model: ArgumentModel): string[] {
  const element = model.element(model.typeAt(model.argType('transaction'), ['actions'], {}));
  return Object.keys(model.object(element)?.variants ?? {}).sort();
}

function completeKeyOrValue(
  model: ArgumentModel,
  argType: string | undefined,
  others: readonly string[],
  part: string,
): Completion {
  const preview = previewOf(others);
  const eq = part.indexOf('=');
  if (eq > 0) {
    const key = part.slice(0, eq);
    const type = model.typeAt(argType, key.split('.'), preview);
    return finish(
      model.literals(type).map((v) => `${key}=${v}`),
      part,
    );
  }
  const segments = part.split('.');
  const parents = segments.slice(0, -1);
  const prefix = parents.length > 0 ? `${parents.join('.')}.` : '';
  const parentType = parents.length > 0 ? model.typeAt(argType, parents, preview) : argType;
  let parentValue: unknown = preview;
  for (const s of parents) parentValue = isRecord(parentValue) ? parentValue[s] : undefined;
  const taken = isRecord(parentValue) ? parentValue : {};
  const { members } = model.members(parentType, parentValue);
  const candidates = members
    .filter((m) => taken[m.name] === undefined || isRecord(taken[m.name]))
    .map((m) => {
      const def = model.tables.types[m.type];
      return `${prefix}${m.name}${def?.kind === 'object' ? '.' : '='}`;
    });
  return finish(candidates, part);
}

export function complete(line: string, context: CompletionContext): Completion {
  const { tokens, trailingSpace, open } = tokenize(line);
  if (open) return [[], ''];
  const words = tokens.map((t) => t.text);
  const part = trailingSpace || words.length === 0 ? '' : words[words.length - 1]!;
  const done = trailingSpace ? words : words.slice(0, -1);
  const model = context.model;

  if (context.mode === 'hmp') {
    const hmp = context.hmp ?? { commands: [], info: [] };
    if (done.length === 0) return finish([...hmp.commands], part);
    if (done.length === 1 && done[0] === 'info') return finish([...hmp.info], part);
    if (done.length === 1 && done[0] === 'help') return finish([...hmp.commands], part);
    return [[], part];
  }

  if (context.inTransaction) {
    if (model === undefined) return [[], part];
    if (done.length === 0) return finish([...transactionActions(model), ')'], part);
    const action = transactionActionType(model, done[0]!);
    if (action === undefined || part.startsWith('{')) return [[], part];
    return completeKeyOrValue(model, action.type, done.slice(1), part);
  }

  if (done.length === 0)
    return finish([...(model?.commandNames() ?? []), ...context.builtins], part);
  const command = done[0]!;
  if (command === 'help')
    return done.length === 1 ? finish(model?.commandNames() ?? [], part) : [[], part];
  if (command === 'transaction(') {
    if (model === undefined) return [[], part];
    if (done.length === 1) return finish(transactionActions(model), part);
    const action = transactionActionType(model, done[1]!);
    return action ? completeKeyOrValue(model, action.type, done.slice(2), part) : [[], part];
  }
  if (model === undefined || !model.hasCommand(command) || part.startsWith('{')) return [[], part];
  return completeKeyOrValue(model, model.argType(command), done.slice(1), part);
}
