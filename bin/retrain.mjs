#!/usr/bin/env node
// Entry point of the `retrain` CLI. The project ships TypeScript sources and runs them through tsx's
// ESM loader, so `npx retrain` works right after `npm ci` with no build step.
import { register } from 'tsx/esm/api';

// The AWS SDK (S3 store) prints a 7-line notice on every start under Node 20 that its releases from
// 2027 will need Node 22. The versions pinned here support Node 20, and a CLI whose errors are one
// line must not print it.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
register();
const { main } = await import('../src/cli/main.ts');
await main(process.argv);
// Every command closes what it opened; exiting here also guards against a stray handle keeping a
// finished command alive.
process.exit(process.exitCode ?? 0);
