/**
 * `pnpm bench:codec-bytes` — the QMP decoder before and after it moved from `Buffer` to
 * `Uint8Array` (codec/bytes.ts, so it runs in a browser), in one run, on the recorded QEMU 7.2
 * session (no QEMU needed):
 *
 *   old     the Buffer-only codec as it was before that change (decoder, splitter, messages,
 *           errors at BASELINE_COMMIT, read from git history into a temp dir and loaded here)
 *   node    today's codec as Node runs it (`Buffer` behind `bytes`: the path clients use)
 *   web     today's codec with `bytes` forced to the `TextDecoder` implementation (what a
 *           browser runs), loaded from a temp copy of today's sources
 *
 * Both framings (lines, stream), with and without the 200 KB schema line (large vs per-message
 * cost), 64 KiB chunks. The contenders alternate, best of 9 each, so host noise hits all alike;
 * ratios are against `old` from this run.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  QmpDecoder,
  type QmpDecoderOptions,
  type QmpMessageHandler,
} from '@qmpkit/transport/codec';

/** The parent of the commit that made the codec Node-free ("transport runs in the browser"). */
const BASELINE_COMMIT = 'e65aaae24d402a802080be58e67699f609733bd2^';
const REPO = path.resolve(import.meta.dirname, '../..');
const SRC = 'packages/transport/src';
/** The codec's files and what they import (errors.ts, messages.ts only for types). */
const FILES = ['codec/decoder.ts', 'codec/splitter.ts', 'codec/messages.ts', 'errors.ts'];
const ROUNDS = 9;

type DecoderClass = new (handler: QmpMessageHandler, options?: QmpDecoderOptions) => QmpDecoder;

function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', {
    maximumFractionDigits: digits,
    minimumFractionDigits: digits,
  });
}

/** Writes `files` (relative to the transport's src) into `root`, each from `read`. */
function writeTree(root: string, files: readonly string[], read: (file: string) => string): void {
  for (const file of files) {
    const target = path.join(root, file);
    mkdirSync(path.dirname(target), { recursive: true });
    writeFileSync(target, read(file));
  }
}

/** The Buffer-only decoder from git history. */
async function oldDecoder(root: string): Promise<DecoderClass> {
  writeTree(root, FILES, (file) =>
    execFileSync('git', ['show', `${BASELINE_COMMIT}:${SRC}/${file}`], {
      cwd: REPO,
      encoding: 'utf8',
      maxBuffer: 16 * 1024 * 1024,
    }),
  );
  const decoder = readFileSync(path.join(root, 'codec/decoder.ts'), 'utf8');
  if (!decoder.includes("from 'node:buffer'"))
    throw new Error(`${BASELINE_COMMIT}: expected the Buffer-based decoder`);
  return (await import(pathToFileURL(path.join(root, 'codec/decoder.ts')).href))
    .QmpDecoder as DecoderClass;
}

/** Today's decoder with `bytes` pinned to the TextDecoder implementation. */
async function webDecoder(root: string): Promise<DecoderClass> {
  const pin = 'export const bytes: Bytes = nodeBytes ?? webBytes;';
  writeTree(root, [...FILES, 'codec/bytes.ts'], (file) => {
    const text = readFileSync(path.join(REPO, SRC, file), 'utf8');
    if (file !== 'codec/bytes.ts') return text;
    if (!text.includes(pin)) throw new Error(`codec/bytes.ts no longer has: ${pin}`);
    return text.replace(pin, 'export const bytes: Bytes = webBytes;');
  });
  return (await import(pathToFileURL(path.join(root, 'codec/decoder.ts')).href))
    .QmpDecoder as DecoderClass;
}

function streamOf(smallOnly: boolean): Buffer {
  const full = readFileSync(path.join(REPO, SRC, 'codec/fixtures/qemu-7.2-session.qmp'));
  // smallOnly: the session without its 200 KB query-qmp-schema line (per-message cost).
  const recorded = smallOnly
    ? Buffer.from(
        full
          .toString('latin1')
          .split('\n')
          .filter((l) => !l.includes('"meta-type"'))
          .join('\n'),
        'latin1',
      )
    : full;
  return Buffer.concat(Array.from({ length: smallOnly ? 5000 : 25 }, () => recorded));
}

/** A run of one decoder over `stream`; returns the messages it decoded. */
function runner(Decoder: DecoderClass, stream: Buffer, framing: 'lines' | 'stream'): () => number {
  return () => {
    let messages = 0;
    const count = () => {
      messages++;
    };
    const decoder = new Decoder(
      {
        greeting: count,
        return: count,
        error: count,
        event: count,
        command: count,
        protocolError: (e) => {
          throw e;
        },
      },
      { chunksAreImmutable: true, framing }, // as the session uses it
    );
    const chunk = 64 * 1024;
    for (let i = 0; i < stream.length; i += chunk) decoder.push(stream.subarray(i, i + chunk));
    decoder.end();
    return messages;
  };
}

const scratch = mkdtempSync(path.join(tmpdir(), 'qmpkit-bench-codec-'));
try {
  const load = loadavg();
  const contenders: [string, DecoderClass][] = [
    ['old (Buffer, before)', await oldDecoder(path.join(scratch, 'old'))],
    ['node (Uint8Array + Buffer)', QmpDecoder],
    ['web (Uint8Array + TextDecoder)', await webDecoder(path.join(scratch, 'web'))],
  ];
  console.log(
    `QMP decode, old Buffer codec vs today's, ${ROUNDS} alternating rounds, best each; load average before ${load.map((l) => l.toFixed(2)).join(' ')}; Node ${process.version}`,
  );
  for (const smallOnly of [false, true]) {
    const stream = streamOf(smallOnly);
    for (const framing of ['lines', 'stream'] as const) {
      const runs = contenders.map(([, Decoder]) => runner(Decoder, stream, framing));
      const counts = runs.map((run) => run()); // warm-up, and every contender must agree
      if (new Set(counts).size !== 1) throw new Error(`message counts differ: ${counts}`);
      const best = runs.map(() => Number.POSITIVE_INFINITY);
      for (let round = 0; round < ROUNDS; round++)
        runs.forEach((run, i) => {
          const t0 = performance.now();
          run();
          best[i] = Math.min(best[i]!, performance.now() - t0);
        });
      const mb = stream.length / 1e6;
      console.log(
        `${smallOnly ? 'without' : 'with'} the schema line, ${framing} framing (${fmt(mb, 1)} MB, ${fmt(counts[0]!)} messages)`,
      );
      contenders.forEach(([label], i) => {
        const rate = mb / (best[i]! / 1000);
        console.log(
          `  ${label.padEnd(32)} ${fmt(rate).padStart(6)} MB/s  ${fmt(best[0]! / best[i]!, 2)}× of old`,
        );
      });
    }
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
