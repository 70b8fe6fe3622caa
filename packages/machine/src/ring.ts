/** The last `capacity` bytes of a stream (QEMU's stderr): memory stays bounded however much it writes. */
export class ByteRing {
  private chunks: Buffer[] = [];
  private size = 0;
  /** Bytes dropped from the front so far. */
  dropped = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError('ring capacity must be a positive integer');
  }

  push(chunk: Buffer): void {
    if (chunk.length >= this.capacity) {
      this.dropped += this.size + chunk.length - this.capacity;
      this.chunks = [Buffer.from(chunk.subarray(chunk.length - this.capacity))];
      this.size = this.capacity;
      return;
    }
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size > this.capacity) {
      const first = this.chunks[0]!;
      const excess = this.size - this.capacity;
      if (first.length <= excess) {
        this.chunks.shift();
        this.size -= first.length;
        this.dropped += first.length;
      } else {
        this.chunks[0] = first.subarray(excess);
        this.size -= excess;
        this.dropped += excess;
      }
    }
  }

  get length(): number {
    return this.size;
  }

  /** The retained bytes as text (UTF-8; a character cut at the front shows as U+FFFD). */
  text(): string {
    return Buffer.concat(this.chunks, this.size).toString('utf8');
  }

  clear(): void {
    this.chunks = [];
    this.size = 0;
  }
}
