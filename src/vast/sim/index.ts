export * from './server.js';
export { runVastSimFromFlags } from './cli.js';
export type { VastSimFlags } from './cli.js';
