/** Queue names. One Redis prefix per deployment (Config.queuePrefix) keeps deployments apart. */
export const QUEUES = {
  train: 'train',
  promote: 'promote',
  finalize: 'finalize-run',
  /** Repeatable housekeeping (the orphan reaper). */
  maintenance: 'maintenance',
  /** The daily job scheduler's jobs: each plans and enqueues one run (scheduler/). */
  scheduler: 'scheduler',
} as const;

export type QueueName = (typeof QUEUES)[keyof typeof QUEUES];

export function finalizeJobId(date: string, seq: number): string {
  return `finalize__${date}__${seq}`;
}
