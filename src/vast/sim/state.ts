/**
 * `sim.state()` / `GET /_sim/state`: what was rented, destroyed and billed, keys, faults and calls.
 */
import { billedSeconds, chargesOf } from './billing.js';
import { alive, type SimContext } from './context.js';
import { sshAccess } from './sshgate.js';
import type { InstanceCharges, VastSimState } from './types.js';
import { view } from './view.js';

export function snapshot(ctx: SimContext): VastSimState {
  const now = Date.now();
  const st: Pick<
    VastSimState,
    | 'billedSeconds'
    | 'billedUsd'
    | 'charges'
    | 'env'
    | 'sshKeys'
    | 'sshKeysLost'
    | 'sshAccess'
    | 'sshRefused'
    | 'bids'
    | 'badImage'
  > = {
    billedSeconds: {},
    billedUsd: {},
    charges: {},
    env: {},
    sshKeys: {},
    sshKeysLost: {},
    sshAccess: {},
    sshRefused: {},
    bids: {},
    badImage: {},
  };
  for (const i of ctx.instances.values()) {
    const c: InstanceCharges = chargesOf(ctx, i, now);
    st.billedSeconds[i.id] = billedSeconds(ctx, i, now);
    st.billedUsd[i.id] = c.total;
    st.charges[i.id] = c;
    st.env[i.id] = { ...i.containerEnv };
    st.sshKeys[i.id] = [...i.sshKeys];
    st.sshKeysLost[i.id] = [...i.sshKeysLost];
    st.sshAccess[i.id] = sshAccess(ctx, i);
    st.sshRefused[i.id] = i.sshRefused;
    st.bids[i.id] = i.price;
    if (i.badImage) st.badImage[i.id] = i.badImage.msg;
  }
  return {
    rented: [...ctx.rentedOrder],
    destroyed: [...ctx.destroyedOrder],
    alive: alive(ctx).map((i) => i.id),
    ...st,
    instances: [...ctx.instances.values()].map((i) => view(ctx, i, now)),
    outbid: [...ctx.outbidOrder],
    ...ctx.counters,
    faultsInjected: { ...ctx.injected },
    calls: Object.fromEntries(Object.entries(ctx.calls).map(([k, v]) => [k, { ...v }])),
  };
}
