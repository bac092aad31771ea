// Atomic file creation: temp file in the same folder, fsync, rename, fsync the folder. Private to
// the library (the safetensors and GGUF writers, the merge).
import { closeSync, fsyncSync, ftruncateSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { dirname, basename, join } from "node:path";

let counter = 0;

/** A temp path next to `path` (same folder, so rename is atomic). */
export function tempPathFor(path: string): string {
  const pid = (globalThis as { process?: { pid?: number } }).process?.pid ?? 0;
  return join(dirname(path), `.${basename(path)}.tmp-${pid}-${Date.now().toString(36)}-${counter++}`);
}

/** Write all of `buf` at `position`, looping on partial writes. */
export function writeFully(fd: number, buf: Uint8Array, position: number): void {
  let done = 0;
  while (done < buf.byteLength) {
    const n = writeSync(fd, buf, done, buf.byteLength - done, position + done);
    if (n <= 0) throw new Error(`Cannot write: write returned ${n}`);
    done += n;
  }
}

/** fsync a folder so a rename inside it is durable. */
export function fsyncDir(dir: string): void {
  let fd = -1;
  try {
    fd = openSync(dir, "r");
    fsyncSync(fd);
  } catch {
    // Some filesystems refuse fsync on folders; the rename itself is still atomic.
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

/** A file being written under a temp name; `commit` makes it appear at `path` atomically. */
export class AtomicFile implements Disposable {
  readonly path: string;
  readonly tempPath: string;
  readonly fd: number;
  #done = false;

  /** Create the temp file (`tempPath`, default a fresh name beside `path`); it must not exist. */
  constructor(path: string, tempPath: string = tempPathFor(path)) {
    this.path = path;
    this.tempPath = tempPath;
    this.fd = openSync(this.tempPath, "wx", 0o644);
  }

  /** True once committed or aborted. */
  get done(): boolean {
    return this.#done;
  }

  write(buf: Uint8Array, position: number): void {
    writeFully(this.fd, buf, position);
  }

  /** Size the file to `size` bytes when given, fsync it and rename it to `path` (default: the constructor's). */
  commit(path: string = this.path, size?: number): void {
    if (this.#done) return;
    if (size !== undefined) ftruncateSync(this.fd, size);
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.#done = true;
    try {
      renameSync(this.tempPath, path);
    } catch (e) {
      rmSync(this.tempPath, { force: true });
      throw e;
    }
    fsyncDir(dirname(path));
  }

  abort(): void {
    if (this.#done) return;
    this.#done = true;
    try {
      closeSync(this.fd);
    } catch { /* already closed */ }
    rmSync(this.tempPath, { force: true });
  }

  [Symbol.dispose](): void {
    this.abort();
  }
}
