// Where the tuner keeps its choices across sessions: a JSON file under Deno (when permitted), an
// IndexedDB database in a browser, else nothing (choices last as long as the tuner).

/** Variant names by size class, for one adapter. */
export type Choices = Readonly<Record<string, string>>;

/** A place that keeps each adapter's choices. Failures read as "nothing kept": the cache is an optimization. */
export interface ChoiceStore {
  /** What this store is, for reports and tests ("file /path", "indexeddb", "memory"). */
  readonly kind: string;
  read(adapterKey: string): Promise<Choices>;
  write(adapterKey: string, choices: Choices): Promise<void>;
}

function granted(name: "env" | "read" | "write", what?: string): boolean {
  const deno = (globalThis as { Deno?: typeof Deno }).Deno;
  if (deno?.permissions?.querySync === undefined) return false;
  const desc = name === "env" ? { name, variable: what } : { name, path: what };
  return deno.permissions.querySync(desc as Deno.PermissionDescriptor).state === "granted";
}

/** An environment variable where env access is granted; in a browser, a string set on globalThis. */
export function envFlag(name: string): string | undefined {
  if (granted("env", name)) return Deno.env.get(name);
  const global = (globalThis as Record<string, unknown>)[name];
  return typeof global === "string" ? global : undefined;
}

// $XDG_CACHE_HOME/jetfold or ~/.cache/jetfold, where env access allows.
function defaultCacheFile(): string | null {
  if (!granted("env", "HOME") && !granted("env", "XDG_CACHE_HOME")) return null;
  const base = envFlag("XDG_CACHE_HOME") ?? (envFlag("HOME") ? `${envFlag("HOME")}/.cache` : undefined);
  return base ? `${base}/jetfold/webgpu-tiles.json` : null;
}

/** Keeps nothing. */
export const memoryStore: ChoiceStore = {
  kind: "memory",
  read: () => Promise.resolve({}),
  write: () => Promise.resolve(),
};

/** A JSON file mapping adapter keys to their choices, written atomically beside other adapters'. */
export function fileStore(file: string): ChoiceStore {
  const readAll = (): Record<string, Choices> => {
    try {
      return JSON.parse(Deno.readTextFileSync(file));
    } catch {
      return {}; // no file yet, or one another version wrote
    }
  };
  return {
    kind: `file ${file}`,
    read: (key) => Promise.resolve(granted("read", file) ? readAll()[key] ?? {} : {}),
    write(key, choices) {
      if (!granted("write", file) || !granted("read", file)) return Promise.resolve();
      try {
        const all = { ...readAll(), [key]: choices };
        const dir = file.slice(0, file.lastIndexOf("/"));
        if (dir) Deno.mkdirSync(dir, { recursive: true });
        const tmp = `${file}.${crypto.randomUUID()}.tmp`;
        Deno.writeTextFileSync(tmp, JSON.stringify(all, null, 1));
        Deno.renameSync(tmp, file);
      } catch {
        // A read-only disk only means measuring again next run.
      }
      return Promise.resolve();
    },
  };
}

const DB_STORE = "tiles";

// The part of IndexedDB used here (Deno's types have no DOM).
interface IdbRequest<T> {
  readonly result: T;
  readonly error: unknown;
  onsuccess: (() => void) | null;
  onerror: (() => void) | null;
}
interface IdbStore {
  get(key: string): IdbRequest<unknown>;
  put(value: unknown, key: string): IdbRequest<unknown>;
}
interface IdbTransaction {
  objectStore(name: string): IdbStore;
  oncomplete: (() => void) | null;
  onerror: (() => void) | null;
  onabort: (() => void) | null;
}
interface IdbDatabase {
  transaction(name: string, mode: "readonly" | "readwrite"): IdbTransaction;
  createObjectStore(name: string): unknown;
  close(): void;
}
/** The IndexedDB factory, as the tuner uses it. */
export interface IdbFactory {
  open(name: string, version: number): IdbRequest<IdbDatabase> & { onupgradeneeded: (() => void) | null };
  deleteDatabase(name: string): IdbRequest<unknown>;
}

/** This runtime's IndexedDB, or undefined (Deno has none). */
export function indexedDb(): IdbFactory | undefined {
  return (globalThis as { indexedDB?: IdbFactory }).indexedDB ?? undefined;
}

// A request's result as a promise.
const settled = <T>(req: IdbRequest<T>) =>
  new Promise<T>((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });

/** An IndexedDB database (one object store, adapter key -> choices); `name` defaults to "jetfold-webgpu". */
export function indexedDbStore(name = "jetfold-webgpu"): ChoiceStore {
  // A connection per request, closed when its transaction ends: an open one would block deleting
  // or upgrading the database from another tab.
  const request = <T>(mode: "readonly" | "readwrite", f: (s: IdbStore) => IdbRequest<T>): Promise<T> => {
    const factory = indexedDb();
    if (factory === undefined) return Promise.reject(new Error("no IndexedDB"));
    const req = factory.open(name, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(DB_STORE);
    return settled(req).then((db) => {
      const tx = db.transaction(DB_STORE, mode);
      const done = new Promise<void>((resolve) => {
        tx.oncomplete = tx.onerror = tx.onabort = () => (db.close(), resolve());
      });
      return settled(f(tx.objectStore(DB_STORE))).then((v) => done.then(() => v));
    });
  };
  return {
    kind: "indexeddb",
    read: (key) => request("readonly", (s) => s.get(key)).then((v) => (v ?? {}) as Choices, () => ({})),
    write: (key, choices) => request("readwrite", (s) => s.put({ ...choices }, key)).then(() => {}, () => {}),
  };
}

/**
 * The store for `cacheFile` (a path, null for memory, undefined for the default): the default is the
 * file under the user's cache directory under Deno, IndexedDB in a browser, else memory.
 */
export function choiceStore(cacheFile: string | null | undefined): ChoiceStore {
  if (cacheFile === null) return memoryStore;
  if (cacheFile !== undefined) return fileStore(cacheFile);
  const file = defaultCacheFile();
  if (file !== null) return fileStore(file);
  const isDeno = (globalThis as { Deno?: unknown }).Deno !== undefined;
  if (!isDeno && indexedDb() !== undefined) return indexedDbStore();
  return memoryStore;
}
