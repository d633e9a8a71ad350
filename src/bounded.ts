/**
 * A wait with a bound: `answer`'s value, or `fallback` once it fails or takes longer than `ms`.
 * Never rejects; its timer never keeps the process alive (every wait has a bound, none holds a shutdown).
 */
export function settledWithin<T>(answer: Promise<T>, ms: number, fallback: T): Promise<T> {
  return new Promise<T>((resolve) => {
    const timer = setTimeout(() => resolve(fallback), ms);
    timer.unref();
    answer.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      () => {
        clearTimeout(timer);
        resolve(fallback);
      },
    );
  });
}
