/**
 * `@qmpkit/transport/agent`: the guest agent's session (no greeting, no negotiation, sync with
 * `guest-sync-delimited` after every (re)connect) and its decoder. Node only: it speaks over a
 * unix socket or a Node stream, so it lives apart from the root entry, which also runs in a page.
 */
export type { AgentDecoderOptions, AgentMessageHandler } from './codec/agent.js';
export { AgentDecoder } from './codec/agent.js';
export type { AgentSendOptions, AgentSessionOptions, NoReplyOutcome } from './session/agent.js';
export { AgentSession } from './session/agent.js';
