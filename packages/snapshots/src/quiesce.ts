/**
 * The default quiesce hook of disk-only saves: the VM's own guest agent, found in its
 * configuration (a `virtserialport` named `org.qemu.guest_agent.0` on a UNIX socket chardev
 * QEMU listens on) and driven through `@qmpkit/guest-agent`.
 */
import type { VmConfig } from '@qmpkit/devices';
import { GuestAgent } from '@qmpkit/guest-agent';
import type { QuiesceHook } from './types.js';

/** The port name qemu-ga opens by default. */
export const AGENT_PORT_NAME = 'org.qemu.guest_agent.0';

/** The host path of the agent's chardev, when the configuration has one we can connect to. */
export function agentSocketPath(config: VmConfig): string | undefined {
  for (const device of config.devices ?? []) {
    if (device.driver !== 'virtserialport') continue;
    const props = 'props' in device ? device.props : device;
    if (props.name !== AGENT_PORT_NAME || typeof props.chardev !== 'string') continue;
    const chardev = (config.chardevs ?? []).find((c) => c.id === props.chardev);
    const backend = chardev?.backend;
    if (backend?.type !== 'socket') continue;
    const { addr, server } = backend.data;
    if (server !== true || addr.type !== 'unix') continue;
    return addr.data.path;
  }
  return undefined;
}

/** A hook and what ends it. */
export interface OwnedQuiesce {
  readonly hook: QuiesceHook;
  close(): Promise<void>;
}

/**
 * A quiesce hook on the VM's agent socket, or undefined when the configuration has none.
 * The freeze first waits up to `readyTimeout` ms for the agent to answer (`waitForAgent`).
 */
export function agentQuiesce(config: VmConfig, readyTimeout: number): OwnedQuiesce | undefined {
  const socket = agentSocketPath(config);
  if (socket === undefined) return undefined;
  const agent = new GuestAgent({ socket });
  return {
    hook: {
      freeze: async () => {
        await agent.waitForAgent({ timeout: readyTimeout });
        return agent.freeze();
      },
      thaw: () => agent.thaw(),
    },
    close: async () => {
      await agent.close();
    },
  };
}
