/**
 * Terminal input for the shell's readline. Node's readline turns completion off for every
 * character of a multi-character chunk but the last (it takes such a chunk for a paste), so
 * two Tab presses that arrive in one read — fast typing, a slow machine, a pty — insert a
 * literal TAB and complete once on the wrong text. `tabsApart` re-chunks the input so that
 * every TAB arrives alone, which readline reads as a key press.
 */
import { PassThrough } from 'node:stream';

type TtyInput = NodeJS.ReadableStream & {
  isTTY?: boolean;
  setRawMode?: (mode: boolean) => unknown;
};

/** Splits `text` so that each TAB is its own piece (empty pieces dropped). */
export function splitTabs(text: string): string[] {
  return text.split(/(\t)/).filter((piece) => piece !== '');
}

/** A stream that carries `input`'s data with every TAB in a chunk of its own. */
export function tabsApart(input: NodeJS.ReadableStream): NodeJS.ReadableStream {
  const source = input as TtyInput;
  const output = Object.assign(new PassThrough({ encoding: 'utf8' }), {
    isTTY: source.isTTY === true,
    setRawMode: (mode: boolean) => {
      source.setRawMode?.(mode);
      return output;
    },
  });
  const onData = (chunk: Buffer | string) => {
    const text = typeof chunk === 'string' ? chunk : chunk.toString('utf8');
    for (const piece of splitTabs(text)) output.write(piece);
  };
  source.on('data', onData);
  source.once('end', () => output.end());
  // readline pauses and resumes its input; pass that on so the real stdin is released.
  output.on('pause', () => source.pause());
  output.on('resume', () => source.resume());
  output.once('close', () => source.off('data', onData));
  return output;
}
