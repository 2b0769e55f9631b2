// Takes over process.stdout/stderr while the fuzzer runs, so that the bridge's log goes to
// a file (and can be quoted next to the request that caused an error) instead of flooding
// the terminal. print() still writes to the terminal.

import { appendFileSync, writeFileSync } from 'node:fs';

type Write = typeof process.stdout.write;

export class LogTap {
  readonly file: string;
  readonly #lines: string[] = [];
  /** Index in #lines of the first line still kept (older ones are dropped). */
  #dropped = 0;
  #partial = '';
  readonly #out: Write;
  readonly #err: Write;
  #active = false;

  constructor(file: string) {
    this.file = file;
    writeFileSync(file, '');
    this.#out = process.stdout.write.bind(process.stdout) as Write;
    this.#err = process.stderr.write.bind(process.stderr) as Write;
  }

  start(): void {
    if (this.#active) return;
    this.#active = true;
    const capture = (chunk: unknown, ...rest: unknown[]): boolean => {
      const text = typeof chunk === 'string' ? chunk : Buffer.isBuffer(chunk) ? chunk.toString('utf8') : String(chunk);
      this.#take(text);
      const callback = rest.find((r): r is () => void => typeof r === 'function');
      if (callback) queueMicrotask(callback);
      return true;
    };
    process.stdout.write = capture as Write;
    process.stderr.write = capture as Write;
  }

  stop(): void {
    if (!this.#active) return;
    this.#active = false;
    process.stdout.write = this.#out;
    process.stderr.write = this.#err;
    if (this.#partial) this.#take('\n');
  }

  /** Writes to the real terminal. */
  print(text: string): void {
    this.#out(text.endsWith('\n') ? text : `${text}\n`);
  }

  /** A position in the log, for since(). */
  mark(): number {
    return this.#dropped + this.#lines.length;
  }

  /** The lines logged since `mark` (those still kept). */
  since(mark: number): string[] {
    return this.#lines.slice(Math.max(0, mark - this.#dropped));
  }

  #take(text: string): void {
    appendFileSync(this.file, text);
    const parts = (this.#partial + text).split('\n');
    this.#partial = parts.pop() ?? '';
    // Strip colour codes, so that quoted lines read plainly.
    for (const line of parts) this.#lines.push(line.replace(/\x1b\[[0-9;]*m/g, ''));
    if (this.#lines.length > 20_000) {
      const drop = this.#lines.length - 10_000;
      this.#lines.splice(0, drop);
      this.#dropped += drop;
    }
  }
}
