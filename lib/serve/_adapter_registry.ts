/**
 * Which adapters the server knows and which are loaded: adapters given at start (or loaded by
 * the admin route) and, with an adapters folder, any `DIR/<name>` holding an
 * `adapter_config.json`, loaded on first use. At most `maxAdapters` are held in memory; the least
 * recently used one that no running request uses is unloaded to make room (and loaded again from
 * its folder when next asked for).
 * @module
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Engine } from "./_engine.ts";
import { OpenAIError } from "./protocol.ts";

/** Options of {@link AdapterRegistry}. */
export interface AdapterRegistryOptions {
  /** Folder whose subfolders are adapters, by folder name (loaded on first use). */
  adaptersDir?: string;
  /** Adapters held in memory at most (default: no bound). */
  maxAdapters?: number;
}

/** The known adapters of a server and their loading. */
export class AdapterRegistry {
  readonly #engine: Engine;
  readonly #dir: string | null;
  readonly #max: number;
  /** Name → folder, for every adapter known (loaded or not). */
  readonly paths: Map<string, string>;
  /** Loaded adapters, least recently used first. */
  #lru: string[];
  /** Requests holding each adapter (from {@link AdapterRegistry.acquire} to their release). */
  readonly #pins = new Map<string, number>();

  /**
   * @param engine The engine adapters load into (those already loaded count, in order).
   * @param paths Folders of the adapters given at start, by name.
   * @param options The adapters folder and the bound.
   */
  constructor(engine: Engine, paths: Map<string, string>, options: AdapterRegistryOptions = {}) {
    this.#engine = engine;
    this.paths = paths;
    this.#dir = options.adaptersDir ?? null;
    this.#max = options.maxAdapters ?? Infinity;
    if (!(this.#max >= 1)) throw new RangeError(`Cannot serve: maxAdapters must be at least 1: current value is ${this.#max}`);
    this.#lru = [...engine.adapters];
  }

  /** Names to list in `/v1/models`: every adapter known (loaded, given at start, or loaded from the folder before). */
  get names(): string[] {
    return [...new Set([...this.#engine.adapters, ...this.paths.keys()])];
  }

  /**
   * The adapter `name`, loaded (from its folder if need be, making room first) and held until
   * the returned release function is called (a held adapter is never unloaded). Throws a 404
   * {@link OpenAIError} for a name that is neither known nor a folder under the adapters folder,
   * and a 429 when every held adapter is in use by a running request.
   */
  acquire(name: string): () => void {
    this.#load(name);
    this.#pins.set(name, (this.#pins.get(name) ?? 0) + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const n = (this.#pins.get(name) ?? 1) - 1;
      if (n > 0) this.#pins.set(name, n);
      else this.#pins.delete(name);
    };
  }

  #load(name: string): void {
    if (this.#engine.adapters.includes(name)) {
      this.#touch(name);
      return;
    }
    let dir = this.paths.get(name);
    if (dir === undefined && this.#dir !== null && /^[\w.-]+$/.test(name) && name !== "." && name !== "..") {
      const cand = join(this.#dir, name);
      if (existsSync(join(cand, "adapter_config.json"))) dir = cand;
    }
    if (dir === undefined) throw OpenAIError.notFound(`The model \`${name}\` does not exist.`, "model");
    this.#makeRoom();
    try {
      this.#engine.loadAdapter(name, dir);
    } catch (e) {
      throw new OpenAIError(400, `Cannot load adapter '${name}' from '${dir}': ${(e as Error).message}`, "BadRequestError", "model");
    }
    this.paths.set(name, dir);
    this.#lru.push(name);
  }

  /** Load `name` from `dir` now (the admin route); refused when the name is known. */
  add(name: string, dir: string): void {
    this.#makeRoom();
    this.#engine.loadAdapter(name, dir);
    this.paths.set(name, dir);
    this.#lru.push(name);
  }

  /** Unload and forget `name` (refused while a request holds it). */
  remove(name: string): void {
    if (this.#pins.has(name)) throw new RangeError(`Cannot unload adapter "${name}": a running or waiting request uses it`);
    if (this.#engine.adapters.includes(name)) this.#engine.unloadAdapter(name);
    this.paths.delete(name);
    this.#lru = this.#lru.filter((n) => n !== name);
  }

  #touch(name: string): void {
    this.#lru = [...this.#lru.filter((n) => n !== name), name];
  }

  #makeRoom(): void {
    while (this.#engine.adapters.length >= this.#max) {
      const victim = this.#lru.find((n) => {
        if (this.#pins.has(n)) return false;
        try {
          this.#engine.unloadAdapter(n);
          return true;
        } catch {
          return false; // in use
        }
      });
      if (victim === undefined) {
        throw new OpenAIError(429, `Cannot load another adapter: all ${this.#max} adapter slots are used by running requests: retry later`, "rate_limit_error", "model", "adapters_busy");
      }
      this.#lru = this.#lru.filter((n) => n !== victim);
    }
  }
}
