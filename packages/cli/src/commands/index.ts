/**
 * Every subcommand, in `--help` order. Add a subcommand by writing one module that exports
 * a `CliCommand` (see `command.ts`) and listing it here; nothing else needs to change.
 */
import { backupCommand } from './backup.js';
import { blockCommand } from './block.js';
import { bridgeCommand } from './bridge.js';
import type { CliCommand } from './command.js';
import { demoCommand } from './demo.js';
import { eventsCommand } from './events.js';
import { execCommand } from './exec.js';
import { machineCommand } from './machine.js';
import { qemuCommand } from './qemu.js';
import { schemaCommand } from './schema.js';
import { serveCommand } from './serve.js';
import { shellCommand } from './shell.js';
import { snapshotCommand } from './snapshot.js';
import { vmCommand } from './vm.js';
import { vmstateCommand } from './vmstate.js';

export const COMMANDS: readonly CliCommand[] = [
  demoCommand,
  shellCommand,
  execCommand,
  eventsCommand,
  schemaCommand,
  vmCommand,
  snapshotCommand,
  backupCommand,
  blockCommand,
  qemuCommand,
  vmstateCommand,
  machineCommand,
  bridgeCommand,
  serveCommand,
];
