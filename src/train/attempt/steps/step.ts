import type { AttemptContext } from '../context.js';

/**
 * One step of an attempt, as an "ensure": `holds` says from the persisted facts alone (state,
 * facts) that its work is done; `ensure` does it, idempotently (a resume reattaches rather than
 * redoes), entering its own state first.
 */
export interface Step {
  readonly name: string;
  holds(ctx: AttemptContext): boolean;
  ensure(ctx: AttemptContext): Promise<void>;
}
