/**
 * `@qmpkit/transport`: a typed QMP client for QEMU, typed for one version's bindings (by
 * default the default version of `@qmpkit/qapi`). Version ranges and typed capability checks:
 * `@qmpkit/transport/versions`; codec: `@qmpkit/transport/codec`; fd helpers:
 * `@qmpkit/transport/fd`.
 */

// `#dial` is `dial.browser.ts` under the `browser` condition (WebSocket only, no Node
// built-ins), else `dial.node.ts` (UNIX, TCP, WebSocket, Duplex).
export { dial } from '#dial';
export type {
  ConnectOptions,
  DistributiveOmitJobId,
  ReconnectOptions,
  ValidateMode,
  ValidationReport,
} from './client/client.js';
export { connect, QmpClient } from './client/client.js';
export type { EventStreamOptions, WaitOptions } from './client/events.js';
export { EventExpectation, EventStream } from './client/events.js';
export type { JobOptions, JobResult } from './client/jobs.js';
export type {
  QapiFeature,
  SchemaInfo,
  SchemaMember,
  SchemaQuery,
  UntypedSchemaQuery,
} from './client/schema.js';
export { SchemaIndex } from './client/schema.js';
export type {
  ArgsOf,
  CommandMap,
  CommandName,
  DataOf,
  EventMap,
  EventName,
  ExecuteOptions,
  ExecuteRest,
  HasName,
  HasSubject,
  JobCommandName,
  OobCommandName,
  QmpBindings,
  QmpEvent,
  ReturnOf,
} from './client/types.js';
export { defineBindings } from './client/types.js';
export type { QmpTimestamp, QmpVersionInfo } from './codec/messages.js';
export type { QmpProtocolErrorCode } from './errors.js';
export {
  AgentSyncError,
  isAgentSyncError,
  isQmpCommandError,
  isQmpConnectionError,
  isQmpDisconnectedError,
  isQmpEventOverflowError,
  isQmpHmpError,
  isQmpJobError,
  isQmpProtocolError,
  isQmpStreamError,
  isQmpTimeoutError,
  isQmpUnknownCapabilityError,
  isQmpValidationError,
  QmpCommandError,
  QmpConnectionError,
  QmpDisconnectedError,
  QmpEventOverflowError,
  QmpHmpError,
  QmpJobError,
  QmpProtocolError,
  QmpStreamError,
  QmpTimeoutError,
  QmpUnknownCapabilityError,
  QmpValidationError,
} from './errors.js';
export type {
  CloseReason,
  Logger,
  QmpGreeting,
  SendOptions,
  SessionOptions,
  SessionState,
} from './session/session.js';
export { QmpSession } from './session/session.js';
export type { QmpAddress } from './transports/address.js';
export { formatAddress, parseAddress } from './transports/address.js';
export type { DuplexLike, QmpChannel, QmpChannelHandlers } from './transports/channel.js';
export { StreamChannel } from './transports/channel.js';
export type {
  DialOptions,
  WebSocketConstructor,
  WebSocketFraming,
} from './transports/websocket.js';
export { WebSocketChannel } from './transports/websocket.js';
