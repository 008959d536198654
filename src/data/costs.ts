/** Trading costs for one symbol, handed to the training as costs.json. */
export interface CostEntry {
  symbol: string;
  taker_fee_bps: number;
  maker_fee_bps: number;
  median_spread_bps: number;
  slippage_bps_per_sigma: number;
}
