#!/usr/bin/env node
/**
 * Counts functions over 100 and over 150 lines (eslint's max-lines-per-function, blank lines and
 * comments included) in src/, processors/, queues/, scheduler/ and dashboards/, and lists them.
 * Usage: node scripts/function-lengths.mjs [dirs...]
 */
import { ESLint } from 'eslint';

const dirs = process.argv.slice(2).length
  ? process.argv.slice(2)
  : ['src', 'processors', 'queues', 'scheduler', 'dashboards'];
const eslint = new ESLint({
  overrideConfig: {
    rules: { 'max-lines-per-function': ['warn', { max: 100, skipBlankLines: false, skipComments: false }] },
  },
});
const results = await eslint.lintFiles(dirs.map((d) => `${d}/**/*.ts`));
const long = [];
for (const r of results) {
  for (const m of r.messages) {
    if (m.ruleId !== 'max-lines-per-function') continue;
    const lines = Number(/has too many lines \((\d+)\)/.exec(m.message)?.[1]);
    long.push({ file: r.filePath.replace(process.cwd() + '/', ''), line: m.line, lines, what: m.message });
  }
}
long.sort((a, b) => b.lines - a.lines);
for (const f of long)
  console.log(
    `${String(f.lines).padStart(4)}  ${f.file}:${f.line}  ${f.what.replace(/ has too many.*/, '')}`,
  );
console.log(`over 150 lines: ${long.filter((f) => f.lines > 150).length}; over 100: ${long.length}`);
