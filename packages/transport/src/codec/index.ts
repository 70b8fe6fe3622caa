/**
 * `@qmpkit/transport/codec`: the QMP framing layer, pure (no I/O). Used by the client
 * session and by servers that speak QMP (e.g. a fake QEMU).
 */
export type { QmpProtocolErrorCode } from '../errors.js';
export { isQmpProtocolError, QmpProtocolError } from '../errors.js';
export type { QmpDecoderOptions, QmpMessageHandler } from './decoder.js';
export { DEFAULT_MAX_LINE_BYTES, decodeAll, QmpDecoder } from './decoder.js';
export {
  encodeCommand,
  encodeError,
  encodeEvent,
  encodeGreeting,
  encodeReturn,
} from './encoder.js';
export type {
  QmpMessage,
  QmpMessageKind,
  QmpTimestamp,
  QmpVersionInfo,
  WireCommand,
  WireError,
  WireEvent,
  WireGreeting,
  WireReturn,
} from './messages.js';
