import {
  closeSync,
  fstatSync,
  ftruncateSync,
  openSync,
  readSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import type { FileInfo, Storage } from './storage.js';

/** Files on the host's filesystem (Node only; see `storage.ts` for the interface). */
export class HostStorage implements Storage {
  readonly kind = 'host' as const;

  stat(path: string): FileInfo | undefined {
    try {
      const st = statSync(path);
      return { size: st.size, allocated: st.blocks * 512 };
    } catch {
      return undefined;
    }
  }

  read(path: string, offset: number, length: number): Buffer {
    const fd = openSync(path, 'r');
    try {
      const size = fstatSync(fd).size;
      const n = Math.max(0, Math.min(length, size - offset));
      const buf = Buffer.alloc(n);
      if (n > 0) readSync(fd, buf, 0, n, offset);
      return buf;
    } finally {
      closeSync(fd);
    }
  }

  create(path: string, size: number): void {
    writeFileSync(path, '');
    if (size > 0) {
      const fd = openSync(path, 'r+');
      try {
        ftruncateSync(fd, size);
      } finally {
        closeSync(fd);
      }
    }
  }

  write(path: string, offset: number, data: Uint8Array): void {
    const fd = openSync(path, 'r+');
    try {
      writeSync(fd, data, 0, data.length, offset);
    } finally {
      closeSync(fd);
    }
  }

  resize(path: string, size: number): void {
    const fd = openSync(path, 'r+');
    try {
      ftruncateSync(fd, size);
    } finally {
      closeSync(fd);
    }
  }

  openError(path: string): string | undefined {
    try {
      closeSync(openSync(path, 'r'));
      return undefined;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return 'No such file or directory';
      if (code === 'EACCES') return 'Permission denied';
      if (code === 'EISDIR') return 'Is a directory';
      return (error as Error).message;
    }
  }
}
