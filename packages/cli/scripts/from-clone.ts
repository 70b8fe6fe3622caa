/**
 * `pnpm qmpkit …` in a clone of the repository runs this (see the root package.json). pnpm
 * runs scripts in the workspace root; `INIT_CWD` is the directory the user ran pnpm from, so
 * relative paths on the command line (`schema diff ./a ./b`, `unix:qmp.sock`, `--logfile`)
 * mean what the user meant. Use `pnpm -s qmpkit …`: without `-s` pnpm adds its script banner
 * on stdout and an ELIFECYCLE line on stderr to every non-zero exit.
 */
import { main } from '../src/main.js';

const from = process.env.INIT_CWD;
if (from) process.chdir(from);
process.exitCode = await main(process.argv.slice(2));
