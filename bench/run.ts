/**
 * `npm run bench -- <name>`: runs one benchmark. Each prints what it measured and, as its last
 * line, one JSON object of its figures. Benchmarks are not tests: they never run under `npm test`.
 */
const BENCHES: Record<string, () => Promise<{ [k: string]: () => Promise<void> }>> = {
  overhead: () => import('./overhead.js'),
  scale: () => import('./scale.js'),
  transfer: () => import('./transfer.js'),
  cost: () => import('./cost.js'),
  vast: () => import('./vast.js'),
  xgboost: () => import('./xgboost.js'),
  exec: () => import('./exec.js'),
};

async function main(argv: string[]): Promise<number> {
  const name = argv[2];
  if (!name || !(name in BENCHES)) {
    process.stderr.write(`usage: npm run bench -- <${Object.keys(BENCHES).join('|')}>\n`);
    return 2;
  }
  const mod = await BENCHES[name]!();
  await mod[name]!();
  return 0;
}

main(process.argv).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(
      `bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  },
);
