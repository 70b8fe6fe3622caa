import type { ChardevBackend } from '@qmpkit/qapi';
import type { ConfigParts } from './model.js';

export interface SerialConsoleOptions {
  /** Device id of the `isa-serial` port. */
  readonly id: string;
  /** Chardev id (default: `<id>-chr`). */
  readonly chardev?: string;
  /** Where the guest's output goes: a file, a socket, a ring buffer, … */
  readonly backend: ChardevBackend;
  /** COM port index (0 = COM1). */
  readonly index?: number;
}

/**
 * A serial console: a chardev plus the `isa-serial` port that uses it (with `-nodefaults`
 * there is no implicit serial port). Add the parts with `withParts` (cold start only: ISA
 * devices cannot be hot-plugged).
 */
export function serialConsole(options: SerialConsoleOptions): ConfigParts {
  const chardev = options.chardev ?? `${options.id}-chr`;
  return {
    chardevs: [{ id: chardev, backend: options.backend }],
    devices: [
      options.index === undefined
        ? { driver: 'isa-serial', id: options.id, chardev }
        : { driver: 'isa-serial', id: options.id, chardev, index: options.index },
    ],
  };
}
