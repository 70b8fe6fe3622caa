/**
 * Fault injection: what a misbehaving QEMU (or network) does to a client. Faults are rules
 * matched per command (or per connection for greeting faults) and apply `times` times.
 */

export interface FaultMatch {
  /** Only commands with this name (or matching this pattern). */
  readonly command?: string | RegExp;
  /** Only this client (1-based connection number). */
  readonly client?: number;
  /** Apply this many times, then stop (default: always). */
  readonly times?: number;
}

export type FaultSpec = FaultMatch &
  (
    | { readonly kind: 'delay'; readonly ms: number }
    | { readonly kind: 'stall' }
    | { readonly kind: 'drop' }
    | { readonly kind: 'drop-mid-reply'; readonly bytes?: number }
    | { readonly kind: 'garbage'; readonly text?: string }
    | { readonly kind: 'partial'; readonly bytes?: number }
    | { readonly kind: 'drop-after'; readonly commands: number }
    | { readonly kind: 'event-before-greeting'; readonly event: string; readonly data?: unknown }
    | { readonly kind: 'stall-greeting' }
    | { readonly kind: 'delay-greeting'; readonly ms: number }
  );

export interface FaultHandle {
  /** How often the fault fired. */
  readonly hits: number;
  remove(): void;
}

export const DEFAULT_GARBAGE = '}{"garbage\u0000\r\n';

class Rule implements FaultHandle {
  hits = 0;
  removed = false;
  constructor(
    readonly spec: FaultSpec,
    private readonly list: Rule[],
  ) {}
  remove(): void {
    this.removed = true;
    const i = this.list.indexOf(this);
    if (i >= 0) this.list.splice(i, 1);
  }
}

const GREETING_KINDS = new Set(['event-before-greeting', 'stall-greeting', 'delay-greeting']);

export class Faults {
  private readonly rules: Rule[] = [];

  add(spec: FaultSpec): FaultHandle {
    const rule = new Rule(spec, this.rules);
    this.rules.push(rule);
    return rule;
  }

  clear(): void {
    this.rules.length = 0;
  }

  get empty(): boolean {
    return this.rules.length === 0;
  }

  private take(rule: Rule): boolean {
    if (rule.removed) return false;
    rule.hits++;
    if (rule.spec.times !== undefined && rule.hits >= rule.spec.times) rule.remove();
    return true;
  }

  /** Greeting faults for a new connection, in the order they were added. */
  greeting(client: number): FaultSpec[] {
    const out: FaultSpec[] = [];
    for (const rule of [...this.rules]) {
      if (!GREETING_KINDS.has(rule.spec.kind)) continue;
      if (rule.spec.client !== undefined && rule.spec.client !== client) continue;
      if (this.take(rule)) out.push(rule.spec);
    }
    return out;
  }

  /** Faults for the reply to `command` on `client` (the first matching of each kind). */
  reply(client: number, command: string | undefined): FaultSpec[] {
    const out: FaultSpec[] = [];
    for (const rule of [...this.rules]) {
      const s = rule.spec;
      if (GREETING_KINDS.has(s.kind) || s.kind === 'drop-after') continue;
      if (s.client !== undefined && s.client !== client) continue;
      if (s.command !== undefined) {
        if (command === undefined) continue;
        if (typeof s.command === 'string' ? s.command !== command : !s.command.test(command))
          continue;
      }
      if (out.some((f) => f.kind === s.kind)) continue;
      if (this.take(rule)) out.push(s);
    }
    return out;
  }

  /** The `drop-after` limit for a client, if any. */
  dropAfter(client: number): number | undefined {
    for (const rule of this.rules) {
      const s = rule.spec;
      if (s.kind === 'drop-after' && (s.client === undefined || s.client === client))
        return s.commands;
    }
    return undefined;
  }
}
