/**
 * A Map and a Set that allocate their hash table on the first insert.
 *
 * memory: a session keeps about thirty Maps and Sets for its responses, turns, streams and items,
 * and an idle session (connected, not talking) fills none of them; an empty Map or Set still costs
 * ~180 bytes with its table. Same semantics as Map and Set for everything the sessions use (a
 * `clear` keeps the table, so iterators already running see it cleared, as with a Map).
 */

/** Iterated when nothing was ever inserted (never written: the casts below only narrow its element type). */
const EMPTY_MAP: ReadonlyMap<unknown, unknown> = new Map<unknown, unknown>();
const EMPTY_SET: ReadonlySet<unknown> = new Set<unknown>();

export class LazyMap<K, V> implements ReadonlyMap<K, V> {
  #map: Map<K, V> | null = null;

  get size(): number {
    return this.#map === null ? 0 : this.#map.size;
  }

  get(key: K): V | undefined {
    return this.#map === null ? undefined : this.#map.get(key);
  }

  has(key: K): boolean {
    return this.#map !== null && this.#map.has(key);
  }

  set(key: K, value: V): this {
    (this.#map ??= new Map()).set(key, value);
    return this;
  }

  delete(key: K): boolean {
    return this.#map !== null && this.#map.delete(key);
  }

  clear(): void {
    this.#map?.clear();
  }

  keys(): MapIterator<K> {
    return (this.#map ?? (EMPTY_MAP as ReadonlyMap<K, V>)).keys();
  }

  values(): MapIterator<V> {
    return (this.#map ?? (EMPTY_MAP as ReadonlyMap<K, V>)).values();
  }

  entries(): MapIterator<[K, V]> {
    return (this.#map ?? (EMPTY_MAP as ReadonlyMap<K, V>)).entries();
  }

  [Symbol.iterator](): MapIterator<[K, V]> {
    return this.entries();
  }

  forEach(fn: (value: V, key: K, map: ReadonlyMap<K, V>) => void): void {
    for (const [k, v] of this.entries()) fn(v, k, this);
  }
}

export class LazySet<T> implements ReadonlySet<T> {
  #set: Set<T> | null = null;

  get size(): number {
    return this.#set === null ? 0 : this.#set.size;
  }

  has(value: T): boolean {
    return this.#set !== null && this.#set.has(value);
  }

  add(value: T): this {
    (this.#set ??= new Set()).add(value);
    return this;
  }

  delete(value: T): boolean {
    return this.#set !== null && this.#set.delete(value);
  }

  clear(): void {
    this.#set?.clear();
  }

  values(): SetIterator<T> {
    return (this.#set ?? (EMPTY_SET as ReadonlySet<T>)).values();
  }

  keys(): SetIterator<T> {
    return this.values();
  }

  entries(): SetIterator<[T, T]> {
    return (this.#set ?? (EMPTY_SET as ReadonlySet<T>)).entries();
  }

  [Symbol.iterator](): SetIterator<T> {
    return this.values();
  }

  forEach(fn: (value: T, key: T, set: ReadonlySet<T>) => void): void {
    for (const v of this.values()) fn(v, v, this);
  }
}
