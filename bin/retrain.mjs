#!/usr/bin/env node
// Entry point of the `retrain` CLI. The project ships TypeScript sources and runs them through tsx's
// ESM loader, so `npx retrain` works right after `npm ci` with no build step.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
await main(process.argv);
// Every command closes what it opened; exiting here also guards against a stray handle keeping a
// finished command alive.
process.exit(process.exitCode ?? 0);
