/**
 * QMP wire messages as they appear on the socket, after `JSON.parse`. The decoder hands
 * these objects over as they are (no copy, no wrapper), classified by shape.
 */

/** `{"qemu": {"major", "minor", "micro"}, "package"}` — same format as `query-version`. */
export interface QmpVersionInfo {
  readonly qemu: { readonly major: number; readonly minor: number; readonly micro: number };
  readonly package: string;
}

/** `{"QMP": {"version": …, "capabilities": […]}}`, the first thing a QMP server says. */
export interface WireGreeting {
  readonly QMP: {
    readonly version: QmpVersionInfo;
    readonly capabilities: readonly string[];
  };
}

/** `{"return": value, "id": id}` */
export interface WireReturn {
  readonly return: unknown;
  readonly id?: unknown;
}

/** `{"error": {"class", "desc"}, "id": id}`; `id` is absent for QEMU's JSON parse errors. */
export interface WireError {
  readonly error: { readonly class: string; readonly desc: string };
  readonly id?: unknown;
}

/** QEMU's event timestamp; both members are -1 when QEMU could not read the clock. */
export interface QmpTimestamp {
  readonly seconds: number;
  readonly microseconds: number;
}

/** `{"event": name, "data": {…}, "timestamp": {…}}`; `data` is optional. */
export interface WireEvent {
  readonly event: string;
  readonly data?: unknown;
  readonly timestamp: QmpTimestamp;
}

/** A client's command: `{"execute"|"exec-oob": name, "arguments"?: {…}, "id"?: value}`. */
export interface WireCommand {
  readonly execute?: string;
  readonly 'exec-oob'?: string;
  readonly arguments?: unknown;
  readonly id?: unknown;
}

/** The five shapes, tagged, as returned by `decodeAll` (the streaming decoder does not tag). */
export type QmpMessage =
  | { readonly kind: 'greeting'; readonly message: WireGreeting }
  | { readonly kind: 'return'; readonly message: WireReturn }
  | { readonly kind: 'error'; readonly message: WireError }
  | { readonly kind: 'event'; readonly message: WireEvent }
  | { readonly kind: 'command'; readonly message: WireCommand };

export type QmpMessageKind = QmpMessage['kind'];
