// Prints the annotated listing of the boot sector; `--out FILE` also writes the raw sector
// (handy for `ndisasm -b 16 -o 0x7c00 FILE`). Development aid, not part of the package.
import { writeFileSync } from 'node:fs';
import { bootSectorListing, buildBootSector } from '../src/index.js';

const args = process.argv.slice(2);
const fillRam = args.includes('--fill');
const out = args.indexOf('--out');
process.stdout.write(`${bootSectorListing({ fillRam })}\n`);
if (out >= 0 && args[out + 1]) writeFileSync(args[out + 1] as string, buildBootSector({ fillRam }));
