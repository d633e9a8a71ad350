/**
 * Latency histogram in microseconds: 1 µs buckets below 2 ms, 10 µs below 100 ms, 1 ms below
 * 10 s, then one overflow bucket. Recording is an array increment; histograms merge by addition
 * and travel over IPC as plain arrays.
 */
const FINE_LIMIT = 2_000;
const MID_LIMIT = 100_000;
const COARSE_LIMIT = 10_000_000;
const FINE = FINE_LIMIT;
const MID = (MID_LIMIT - FINE_LIMIT) / 10;
const COARSE = (COARSE_LIMIT - MID_LIMIT) / 1000;
const BUCKETS = FINE + MID + COARSE + 1;

function bucketOf(us: number): number {
  if (us < 0) return 0;
  if (us < FINE_LIMIT) return us | 0;
  if (us < MID_LIMIT) return FINE + (((us - FINE_LIMIT) / 10) | 0);
  if (us < COARSE_LIMIT) return FINE + MID + (((us - MID_LIMIT) / 1000) | 0);
  return BUCKETS - 1;
}

/** The midpoint of a bucket, in µs. */
function valueOf(bucket: number): number {
  if (bucket < FINE) return bucket + 0.5;
  if (bucket < FINE + MID) return FINE_LIMIT + (bucket - FINE) * 10 + 5;
  if (bucket < BUCKETS - 1) return MID_LIMIT + (bucket - FINE - MID) * 1000 + 500;
  return COARSE_LIMIT;
}

export interface HistogramJson {
  /** Sparse [bucket, count] pairs. */
  readonly buckets: readonly (readonly [number, number])[];
  readonly count: number;
  readonly max: number;
  readonly sum: number;
}

export class Histogram {
  readonly #counts = new Float64Array(BUCKETS);
  count = 0;
  max = 0;
  sum = 0;

  record(us: number): void {
    this.#counts[bucketOf(us)]!++;
    this.count++;
    this.sum += us;
    if (us > this.max) this.max = us;
  }

  reset(): void {
    this.#counts.fill(0);
    this.count = 0;
    this.max = 0;
    this.sum = 0;
  }

  /** Value at quantile q (0..1), in µs; NaN when empty. */
  quantile(q: number): number {
    if (this.count === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let b = 0; b < BUCKETS; b++) {
      seen += this.#counts[b]!;
      if (seen >= rank) return Math.min(valueOf(b), this.max);
    }
    return this.max;
  }

  get mean(): number {
    return this.count === 0 ? Number.NaN : this.sum / this.count;
  }

  merge(other: Histogram | HistogramJson): void {
    if (other instanceof Histogram) {
      for (let b = 0; b < BUCKETS; b++) this.#counts[b]! += other.#counts[b]!;
    } else {
      for (const [b, c] of other.buckets) this.#counts[b]! += c;
    }
    this.count += other.count;
    this.sum += other.sum;
    if (other.max > this.max) this.max = other.max;
  }

  toJSON(): HistogramJson {
    const buckets: [number, number][] = [];
    for (let b = 0; b < BUCKETS; b++) if (this.#counts[b]! > 0) buckets.push([b, this.#counts[b]!]);
    return { buckets, count: this.count, max: this.max, sum: this.sum };
  }

  static from(json: HistogramJson): Histogram {
    const h = new Histogram();
    h.merge(json);
    return h;
  }
}

export function median(values: readonly number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}
