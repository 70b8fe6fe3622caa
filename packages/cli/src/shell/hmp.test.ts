import { expect, it } from 'vitest';
import { parseHmpHelp, parseHmpInfoHelp } from './hmp.js';

// Lines in the shape QEMU 7.2 prints for `help` and `help info`.
const HELP = [
  'announce_self [interfaces] [id] -- Trigger GARP/RARP announcements',
  'c|cont  -- resume emulation',
  'info [subcommand] -- show various information about the system state',
  'q|quit  -- quit the emulator',
  '',
].join('\r\n');
const INFO = [
  'info balloon  -- show balloon information',
  'info status  -- show the current VM status (running|paused)',
].join('\r\n');

it('reads command names (with aliases) and info topics', () => {
  expect(parseHmpHelp(HELP)).toEqual(['announce_self', 'c', 'cont', 'info', 'q', 'quit']);
  expect(parseHmpInfoHelp(INFO)).toEqual(['balloon', 'status']);
});
