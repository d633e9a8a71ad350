import { describe, expect, it } from 'vitest';
import { seeded } from '../test/support/seeded.js';
import { LazyMap, LazySet } from './lazy-collections.js';


// Same observable behaviour as Map / Set, step by step, for the operations sessions use.
describe('LazyMap behaves as a Map', () => {
  it('empty: size 0, get/has/delete miss, iterators are empty', () => {
    const m = new LazyMap<string, number>();
    expect(m.size).toBe(0);
    expect(m.get('a')).toBeUndefined();
    expect(m.has('a')).toBe(false);
    expect(m.delete('a')).toBe(false);
    expect([...m]).toEqual([]);
    expect([...m.keys(), ...m.values(), ...m.entries()]).toEqual([]);
    m.clear();
    expect(m.size).toBe(0);
  });

  it('a random sequence of operations gives the same results and order as a Map', () => {
    const lazy = new LazyMap<number, number>();
    const ref = new Map<number, number>();
    const rnd = seeded(7);
    for (let step = 0; step < 2000; step++) {
      const k = rnd(20);
      switch (rnd(6)) {
        case 0:
        case 1:
          expect(lazy.set(k, step)).toBe(lazy);
          ref.set(k, step);
          break;
        case 2:
          expect(lazy.delete(k)).toBe(ref.delete(k));
          break;
        case 3:
          expect(lazy.get(k)).toBe(ref.get(k));
          expect(lazy.has(k)).toBe(ref.has(k));
          break;
        case 4:
          if (rnd(10) === 0) {
            lazy.clear();
            ref.clear();
          }
          break;
        default: {
          expect([...lazy]).toEqual([...ref]);
          expect([...lazy.keys()]).toEqual([...ref.keys()]);
          expect([...lazy.values()]).toEqual([...ref.values()]);
          const seen: [number, number][] = [];
          lazy.forEach((v, key, map) => {
            expect(map).toBe(lazy);
            seen.push([key, v]);
          });
          expect(seen).toEqual([...ref.entries()]);
        }
      }
      expect(lazy.size).toBe(ref.size);
    }
  });

  it('deleting while iterating, and the oldest key first (eviction), as a Map', () => {
    const m = new LazyMap<string, number>();
    for (const k of ['a', 'b', 'c']) m.set(k, 1);
    expect(m.keys().next().value).toBe('a');
    for (const [k] of m) m.delete(k);
    expect(m.size).toBe(0);
  });
});

describe('LazySet behaves as a Set', () => {
  it('empty, then a random sequence of operations gives the same results and order as a Set', () => {
    const lazy = new LazySet<number>();
    const ref = new Set<number>();
    expect(lazy.has(1)).toBe(false);
    expect(lazy.delete(1)).toBe(false);
    expect([...lazy]).toEqual([]);
    lazy.clear();
    expect(lazy.size).toBe(0);
    const rnd = seeded(11);
    for (let step = 0; step < 2000; step++) {
      const v = rnd(20);
      switch (rnd(5)) {
        case 0:
        case 1:
          expect(lazy.add(v)).toBe(lazy);
          ref.add(v);
          break;
        case 2:
          expect(lazy.delete(v)).toBe(ref.delete(v));
          break;
        case 3:
          if (rnd(10) === 0) {
            lazy.clear();
            ref.clear();
          }
          expect(lazy.has(v)).toBe(ref.has(v));
          break;
        default: {
          expect([...lazy]).toEqual([...ref]);
          expect([...lazy.keys()]).toEqual([...ref.keys()]);
          expect([...lazy.entries()]).toEqual([...ref.entries()]);
          const seen: number[] = [];
          lazy.forEach((x, y, set) => {
            expect(x).toBe(y);
            expect(set).toBe(lazy);
            seen.push(x);
          });
          expect(seen).toEqual([...ref]);
        }
      }
      expect(lazy.size).toBe(ref.size);
    }
  });
});
