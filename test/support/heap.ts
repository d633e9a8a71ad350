import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Heap and external (Buffer) memory of this process after a full collection (no timing involved). */
export function heldBytes(): number {
  gc();
  gc();
  const stats = getHeapStatistics() as ReturnType<typeof getHeapStatistics> & { external_memory: number };
  return stats.used_heap_size + stats.external_memory;
}
