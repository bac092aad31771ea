/**
 * Read-only memory mapping of a whole file through libc `mmap` (PROT_READ, MAP_PRIVATE).
 * @module
 */
import { adapter } from "./_adapter.ts";
import { cstr, libc, libcErrno } from "./libc.ts";
import type { Ptr } from "./types.ts";

const O_RDONLY = 0;
const PROT_READ = 1;
const MAP_PRIVATE = 2;
const SEEK_END = 2;
/** madvise / posix_fadvise advice values (Linux). */
export const Advice = { normal: 0, random: 1, sequential: 2, willNeed: 3, dontNeed: 4 } as const;

/**
 * A file mapped read-only. Views are zero-copy; a JS write into one would fault, so callers
 * treat them as read-only. Views made through {@link MappedFile.view} are detached on dispose.
 * Files over 4 GiB work in Bun too: views are made per range, never one for the whole file.
 *
 * @example
 * ```ts
 * import { MappedFile } from "./mapped_file.ts";
 * const path = Deno.makeTempFileSync();
 * Deno.writeFileSync(path, new Uint8Array([1, 2, 3, 4]));
 * using f = new MappedFile(path);
 * console.log(f.size, f.view(1, 2)[0]); // 4 2
 * ```
 */
export class MappedFile implements Disposable {
  readonly path: string;
  readonly size: number;
  #ptr: Ptr;
  #fd: number;
  #views: ArrayBuffer[] = [];

  constructor(path: string) {
    this.path = path;
    const fd = libc.symbols.open(cstr(path), O_RDONLY, 0) as number;
    if (fd < 0) {
      const [code, msg] = libcErrno();
      throw new Error(`Cannot open "${path}" for reading: ${msg} (errno ${code})`);
    }
    const end = libc.symbols.lseek(fd, 0n, SEEK_END) as bigint;
    if (end < 0n) {
      libc.symbols.close(fd);
      throw new Error(`Cannot read the size of "${path}": lseek failed`);
    }
    if (end > BigInt(Number.MAX_SAFE_INTEGER)) {
      libc.symbols.close(fd);
      throw new RangeError(`Cannot map "${path}": size ${end} is not a safe integer`);
    }
    this.size = Number(end);
    this.#fd = fd;
    if (this.size === 0) {
      this.#ptr = null;
      return;
    }
    const p = libc.symbols.mmap(null, end, PROT_READ, MAP_PRIVATE, fd, 0n) as Ptr;
    const addr = adapter.ptrToBigInt(p);
    if (p === null || addr === 0xffff_ffff_ffff_ffffn || addr >= 1n << 63n) {
      const [code, msg] = libcErrno();
      libc.symbols.close(fd);
      throw new Error(`Cannot map "${path}" into memory: ${msg} (errno ${code})`);
    }
    this.#ptr = p;
  }

  /** Alignment of byte 0 modulo 64: always 0 (mappings are page-aligned). */
  readonly base = 0;

  /** The base address of the mapping (null for an empty file). */
  get ptr(): Ptr {
    return this.#ptr;
  }

  /** The open file descriptor (for `posix_fadvise`), -1 after dispose. */
  get fd(): number {
    return this.#fd;
  }

  /**
   * A zero-copy `Uint8Array` over `[offset, offset + length)` of the file.
   * Throws `RangeError` when the range leaves the file.
   */
  view(offset: number, length: number): Uint8Array {
    if (this.#fd < 0) throw new Error(`Cannot read "${this.path}": the mapping was closed`);
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new RangeError(`Cannot view bytes [${offset}, ${offset + length}) of "${this.path}": file has ${this.size} bytes`);
    }
    if (length === 0) return new Uint8Array(0);
    const ab = adapter.view(adapter.ptrAdd(this.#ptr, offset), length);
    this.#views.push(ab);
    return new Uint8Array(ab);
  }

  /** `madvise` over a byte range (page-aligned down). Returns the libc status. */
  advise(offset: number, length: number, advice: number): number {
    if (this.#ptr === null || length <= 0) return 0;
    const start = offset - (offset % 4096);
    const len = Math.min(this.size, offset + length) - start;
    return libc.symbols.madvise(adapter.ptrAdd(this.#ptr, start), BigInt(len), advice) as number;
  }

  /** Drop a byte range from the page cache (`MADV_DONTNEED` + `POSIX_FADV_DONTNEED`). */
  dropCache(offset: number, length: number): void {
    if (this.#fd < 0 || length <= 0) return;
    this.advise(offset, length, Advice.dontNeed);
    libc.symbols.posix_fadvise(this.#fd, BigInt(offset), BigInt(length), Advice.dontNeed);
  }

  [Symbol.dispose](): void {
    if (this.#fd < 0) return;
    for (const ab of this.#views) if (ab.byteLength > 0) ab.transfer(0);
    this.#views = [];
    if (this.#ptr !== null) libc.symbols.munmap(this.#ptr, BigInt(this.size));
    libc.symbols.close(this.#fd);
    this.#ptr = null;
    this.#fd = -1;
  }
}
