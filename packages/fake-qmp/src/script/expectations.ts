/**
 * Strict mode, like libvirt's test monitor: an ordered queue of expected commands. Each
 * command the fake receives (after QEMU's own checks, so arguments are already validated
 * against the schema) must be the next one in the queue; leftovers and unexpected commands
 * are collected and reported by `verify()` as a readable diff.
 */
import { ExpectationError, type ExpectationFailure, qmpError } from '../errors.js';
import type { CommandContext, CommandHandler } from '../server/types.js';

export type ArgumentsMatcher =
  | Record<string, unknown>
  | ((args: Record<string, unknown>) => boolean);

type Reply =
  | { readonly kind: 'model' }
  | { readonly kind: 'return'; readonly value: unknown }
  | { readonly kind: 'error'; readonly desc: string; readonly errorClass: string }
  | { readonly kind: 'handler'; readonly fn: CommandHandler };

/** One expected command; configure its answer with the chained methods. */
export class Expectation {
  reply: Reply = { kind: 'model' };
  readonly events: { event: string; data?: unknown }[] = [];
  received = false;

  constructor(
    readonly command: string,
    readonly args: ArgumentsMatcher | undefined,
  ) {}

  /** Answer with this `return` value (instead of the simulated VM's answer). */
  returns(value: unknown = {}): this {
    this.reply = { kind: 'return', value };
    return this;
  }

  /** Answer with a QMP error. */
  fails(desc: string, errorClass = 'GenericError'): this {
    this.reply = { kind: 'error', desc, errorClass };
    return this;
  }

  /** Answer with a handler (same contract as `fake.handle`). */
  respond(fn: CommandHandler): this {
    this.reply = { kind: 'handler', fn };
    return this;
  }

  /** Emit these events before the reply. */
  emits(event: string, data?: unknown): this {
    this.events.push(data === undefined ? { event } : { event, data });
    return this;
  }

  describe(): string {
    if (this.args === undefined) return this.command;
    if (typeof this.args === 'function')
      return `${this.command} (matching ${this.args.name || 'predicate'})`;
    return `${this.command} ${stable(this.args)}`;
  }

  matches(command: string, args: Record<string, unknown>): boolean {
    if (command !== this.command) return false;
    if (this.args === undefined) return true;
    if (typeof this.args === 'function') return this.args(args);
    return stable(this.args) === stable(args);
  }
}

/** JSON with sorted keys, for order-insensitive comparison and diffs. */
export function stable(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'undefined';
  if (Array.isArray(value)) return `[${value.map(stable).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stable(v)}`).join(',')}}`;
}

export class ExpectationQueue {
  private readonly items: Expectation[] = [];
  private next = 0;
  private readonly failures: ExpectationFailure[] = [];
  private readonly log: string[] = [];
  /** Strict mode is on once anything was expected (or `strict: true` was given). */
  active = false;

  add(command: string, args?: ArgumentsMatcher): Expectation {
    const e = new Expectation(command, args);
    this.items.push(e);
    this.active = true;
    return e;
  }

  get pending(): readonly Expectation[] {
    return this.items.slice(this.next);
  }

  /**
   * The handler for a received command: the expectation's answer, or a GenericError
   * (recorded as a failure) when the command is not the next expected one.
   */
  take(command: string, args: Record<string, unknown>, model: CommandHandler): CommandHandler {
    const expected = this.items[this.next];
    if (expected?.matches(command, args)) {
      const index = this.next++;
      expected.received = true;
      this.log.push(`  ✓ ${index + 1}. ${expected.describe()}`);
      return (a: Record<string, unknown>, ctx: CommandContext) => {
        for (const e of expected.events) ctx.emit(e.event, e.data);
        const reply = expected.reply;
        switch (reply.kind) {
          case 'model':
            return model(a, ctx);
          case 'return':
            return reply.value;
          case 'error':
            throw qmpError(reply.desc, reply.errorClass);
          case 'handler':
            return reply.fn(a, ctx);
        }
      };
    }
    const received = { command, arguments: args };
    const message =
      expected === undefined
        ? `unexpected command ${command} ${stable(args)} (nothing more was expected)`
        : `expected ${expected.describe()}, received ${command} ${stable(args)}`;
    this.failures.push(
      expected === undefined
        ? { kind: 'unexpected', received, message }
        : {
            kind: 'mismatch',
            index: this.next,
            expected: {
              command: expected.command,
              ...(typeof expected.args === 'object' ? { arguments: expected.args } : {}),
            },
            received,
            message,
          },
    );
    this.log.push(
      expected === undefined
        ? `  ✗ unexpected: ${command} ${stable(args)}`
        : `  ✗ ${this.next + 1}. expected ${expected.describe()}\n       received ${command} ${stable(args)}`,
    );
    return () => {
      throw qmpError(`qmpkit fake-qmp: ${message}`);
    };
  }

  /** Throws an ExpectationError when a command was unexpected or an expectation is left. */
  verify(): void {
    const failures = [...this.failures];
    const lines = [...this.log];
    this.items.slice(this.next).forEach((e, i) => {
      const index = this.next + i;
      failures.push({
        kind: 'leftover',
        index,
        expected: {
          command: e.command,
          ...(typeof e.args === 'object' ? { arguments: e.args } : {}),
        },
        message: `expected ${e.describe()} was never received`,
      });
      lines.push(`  ✗ ${index + 1}. never received: ${e.describe()}`);
    });
    if (failures.length > 0) throw new ExpectationError(failures, lines.join('\n'));
  }
}
