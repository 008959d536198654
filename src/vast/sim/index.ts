export { defaultOffers, startVastSim } from './server.js';
export type { VastSim, VastSimFaults, VastSimOptions, VastSimState } from './server.js';
export { runVastSimFromFlags } from './cli.js';
export type { VastSimFlags } from './cli.js';
