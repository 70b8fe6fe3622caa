import type { DuplexLike } from './channel.js';

/** Where a QMP server listens, or an already-open byte stream to one. */
export type QmpAddress =
  | { readonly kind: 'unix'; readonly path: string }
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number }
  | { readonly kind: 'ws'; readonly url: string }
  | { readonly kind: 'duplex'; readonly stream: DuplexLike; readonly label?: string };

/**
 * Parses an address string:
 * - `unix:/run/qemu/qmp.sock` (also `unix:relative/path`; a bare absolute path is accepted too)
 * - `tcp:127.0.0.1:4444`, `tcp:[::1]:4444`, `tcp:localhost:4444`
 * - `ws://host:port/path`, `wss://…` (QMP behind a WebSocket bridge)
 * Throws a `TypeError` naming the problem otherwise.
 */
export function parseAddress(text: string): QmpAddress {
  if (text.startsWith('unix:')) {
    const path = text.slice(5);
    if (path === '') throw new TypeError(`QMP address '${text}': empty socket path`);
    return { kind: 'unix', path };
  }
  if (text.startsWith('/')) return { kind: 'unix', path: text };
  if (text.startsWith('tcp:')) {
    const rest = text.slice(4);
    let host: string;
    let portText: string;
    if (rest.startsWith('[')) {
      const close = rest.indexOf(']');
      if (close < 0 || rest[close + 1] !== ':')
        throw new TypeError(`QMP address '${text}': expected tcp:[ipv6]:port`);
      host = rest.slice(1, close);
      portText = rest.slice(close + 2);
    } else {
      const colon = rest.lastIndexOf(':');
      if (colon <= 0) throw new TypeError(`QMP address '${text}': expected tcp:host:port`);
      host = rest.slice(0, colon);
      portText = rest.slice(colon + 1);
      if (host.includes(':'))
        throw new TypeError(`QMP address '${text}': write IPv6 hosts in brackets, tcp:[::1]:port`);
    }
    if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535)
      throw new TypeError(`QMP address '${text}': port must be 1..65535`);
    if (host === '') throw new TypeError(`QMP address '${text}': empty host`);
    return { kind: 'tcp', host, port: Number(portText) };
  }
  if (text.startsWith('ws://') || text.startsWith('wss://')) {
    try {
      new URL(text);
    } catch {
      throw new TypeError(`QMP address '${text}': not a valid URL`);
    }
    return { kind: 'ws', url: text };
  }
  throw new TypeError(
    `QMP address '${text}': expected unix:/path, tcp:host:port, ws://… or wss://…`,
  );
}

/** The address as a string (the inverse of `parseAddress`; `duplex` for open streams). */
export function formatAddress(address: QmpAddress): string {
  switch (address.kind) {
    case 'unix':
      return `unix:${address.path}`;
    case 'tcp':
      return address.host.includes(':')
        ? `tcp:[${address.host}]:${address.port}`
        : `tcp:${address.host}:${address.port}`;
    case 'ws':
      return address.url;
    case 'duplex':
      return address.label ?? 'duplex';
  }
}
