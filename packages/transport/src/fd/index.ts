/**
 * `@qmpkit/transport/fd`: handing file descriptors to QEMU without SCM_RIGHTS.
 * Node cannot send fds over a UNIX socket (nodejs/node#53391), so qmpkit passes them at
 * spawn time (`stdio` entries → `-add-fd`, `-chardev …,fd=N`, `fd:N` URIs) and streams
 * migration data through a private socket for `migrate uri=unix:…`.
 */
export type { StdioEntry } from './inherited.js';
export {
  escapeOptionValue,
  InheritedFd,
  InheritedFds,
  InheritedFile,
  InheritedSocketpair,
} from './inherited.js';
export type { StreamResult, StreamSink, StreamSinkOptions, StreamSourceOptions } from './stream.js';
export { createStreamSink, streamFileToSocket } from './stream.js';
