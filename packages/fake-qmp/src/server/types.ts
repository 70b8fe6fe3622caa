import type { QemuValue } from '../json/values.js';

/** Marker a handler returns when QEMU sends no reply (commands with `success-response: false`). */
export const NO_REPLY: unique symbol = Symbol('qmpkit.fake-qmp.no-reply');
export type NoReply = typeof NO_REPLY;

/** One client connection as handlers and tests see it. */
export interface FakeClient {
  /** 1-based connection number, in accept order. */
  readonly id: number;
  /** How the client is attached. */
  readonly transport: 'unix' | 'tcp' | 'ws' | 'memory';
  /** Capabilities negotiation done (`qmp_capabilities` accepted). */
  readonly negotiated: boolean;
  /** `oob` enabled by negotiation. */
  readonly oob: boolean;
  /** Commands received so far (every dispatched request, valid or not). */
  readonly commandCount: number;
  /** Writes raw text to this client (no newline added). */
  sendRaw(text: string): void;
  /** Sends an event to this client only. */
  sendEvent(event: string, data?: unknown): void;
  /** Closes this connection (like QEMU closing the monitor socket). */
  close(): void;
}

/** What a command handler gets besides its arguments. */
export interface CommandContext {
  readonly command: string;
  /** The request's `id`, as QEMU would echo it (`undefined` when absent). */
  readonly id: QemuValue | undefined;
  readonly oob: boolean;
  readonly client: FakeClient;
  /** Broadcasts an event to every negotiated client (QEMU's event emission). */
  emit(event: string, data?: unknown): void;
  /** Runs what the fake would have done without the override (the model or default). */
  fallback(): unknown;
}

/**
 * A command implementation. Return the `return` value (`undefined` means `{}`), throw a
 * `QmpReplyError` for an error reply, return `NO_REPLY` to send nothing, or return a promise
 * of any of these: in-band commands behind it wait, as behind a busy QEMU monitor.
 */
export type CommandHandler<A = Record<string, unknown>> = (
  args: A,
  context: CommandContext,
) => unknown;

/** One exchange as the fake saw it (for assertions). */
export interface ExchangeRecord {
  readonly client: number;
  /** Command name, or undefined for input QEMU could not read as a command. */
  readonly command: string | undefined;
  readonly arguments: unknown;
  readonly id: unknown;
  readonly oob: boolean;
  /** The reply as sent (parsed), undefined while pending or for NO_REPLY. */
  reply?: { readonly return?: unknown; readonly error?: { class: string; desc: string } };
}
