/**
 * At most `concurrency` of a group's tasks run at once, started in the order given: what p-limit
 * does, as a class.
 *
 * Why not p-limit: it builds its queue as closures per limiter, and a symbol made three limiters
 * (staging, collecting, uploading). V8 holds a function's optimised code weakly, so once a symbol's
 * closures were gone a full GC dropped that code and the next symbol's closures were compiled
 * again: ~0.4 TurboFan compilations per symbol all through a long run, on V8's threads
 * (bench/RESULTS.md §1j). A class's methods live as long as the module: compiled once.
 */
export class Limiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly concurrency: number) {
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new RangeError(`concurrency must be a positive integer, got ${concurrency}`);
    }
  }

  /** Runs `task` when a place is free; settles as the task does (a throw becomes a rejection). */
  run<T>(task: () => T | PromiseLike<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const start = () => {
        this.active++;
        new Promise<T>((r) => r(task())).then(resolve, reject).finally(() => this.done());
      };
      if (this.active < this.concurrency) start();
      else this.waiting.push(start);
    });
  }

  /** Tasks started and not yet settled. */
  get activeCount(): number {
    return this.active;
  }

  /** Tasks waiting for a place. */
  get pendingCount(): number {
    return this.waiting.length;
  }

  private done(): void {
    this.active--;
    this.waiting.shift()?.();
  }
}
