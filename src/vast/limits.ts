/**
 * The endpoints Vast rate-limits separately, and their intervals as read from Vast's spec
 * (`x-rate-limit`; vast-api.md §1). Used by the API budget (./budget.ts) and as config defaults.
 */
/** The endpoints Vast limits separately (the spec's x-rate-limit entries). */
export type VastEndpoint =
  'search' | 'create' | 'show' | 'list' | 'destroy' | 'manage' | 'ssh' | 'user' | 'other';

/** Seconds between two calls of one endpoint with one key, as read from Vast's spec (0: no limit). */
export const VAST_SPEC_INTERVALS_SEC: Record<VastEndpoint, number> = {
  search: 6,
  create: 4.5,
  show: 2,
  list: 1,
  destroy: 3,
  manage: 1,
  ssh: 1,
  user: 1,
  other: 1,
};

/** Which limited endpoint a request is. */
export function endpointOf(method: string, path: string): VastEndpoint {
  const p = path.replace(/\/+$/, '');
  if (method === 'POST' && p === '/api/v0/bundles') return 'search';
  if (method === 'PUT' && /^\/api\/v0\/asks\/\d+$/.test(p)) return 'create';
  if (p === '/api/v1/instances' && method === 'GET') return 'list';
  // Account keys and per-instance keys count as one endpoint (one limit for both is the safe read).
  if (/^\/api\/v0\/instances\/\d+\/ssh(\/\d+)?$/.test(p)) return 'ssh';
  if (/^\/api\/v0\/instances\/\d+$/.test(p)) {
    if (method === 'GET') return 'show';
    if (method === 'DELETE') return 'destroy';
    return 'manage';
  }
  if (/^\/api\/v0\/ssh(\/\d+)?$/.test(p)) return 'ssh';
  if (p === '/api/v0/users/current') return 'user';
  return 'other';
}
