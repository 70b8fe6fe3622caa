import type { QmpTimestamp, QmpVersionInfo } from './messages.js';

/**
 * Encoders for QMP messages. Each returns one complete line. Client commands end in `\n`;
 * server messages end in `\r\n` like QEMU's. `undefined` members are left out (JSON).
 */

/** `{"execute"|"exec-oob": command, "arguments": args, "id": id}\n` */
export function encodeCommand(
  command: string,
  args?: unknown,
  id?: number | string,
  oob = false,
): string {
  let out = oob ? '{"exec-oob":' : '{"execute":';
  out += JSON.stringify(command);
  if (args !== undefined) out += `,"arguments":${JSON.stringify(args)}`;
  if (id !== undefined) out += `,"id":${typeof id === 'number' ? id : JSON.stringify(id)}`;
  return `${out}}\n`;
}

/** Server side: the greeting. */
export function encodeGreeting(version: QmpVersionInfo, capabilities: readonly string[]): string {
  return `${JSON.stringify({ QMP: { version, capabilities } })}\r\n`;
}

/** Server side: a success reply (`id` echoed when the command had one). */
export function encodeReturn(value: unknown, id?: unknown): string {
  const body = id === undefined ? { return: value } : { return: value, id };
  return `${JSON.stringify(body)}\r\n`;
}

/** Server side: an error reply. */
export function encodeError(errorClass: string, desc: string, id?: unknown): string {
  const error = { class: errorClass, desc };
  return `${JSON.stringify(id === undefined ? { error } : { error, id })}\r\n`;
}

/** Server side: an event; the timestamp defaults to now. */
export function encodeEvent(event: string, data?: unknown, timestamp?: QmpTimestamp): string {
  let ts = timestamp;
  if (ts === undefined) {
    const now = Date.now();
    ts = { seconds: Math.floor(now / 1000), microseconds: (now % 1000) * 1000 };
  }
  const body = data === undefined ? { event, timestamp: ts } : { event, data, timestamp: ts };
  return `${JSON.stringify(body)}\r\n`;
}
