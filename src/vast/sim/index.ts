export { defaultOffers, startVastSim } from './server.js';
export type {
  InstanceCharges,
  RateLimitConfig,
  SimEndpoint,
  VastSim,
  VastSimBilling,
  VastSimFaults,
  VastSimOptions,
  VastSimState,
} from './server.js';
export { runVastSimFromFlags } from './cli.js';
export type { VastSimFlags } from './cli.js';
