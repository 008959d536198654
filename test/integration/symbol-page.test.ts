/**
 * The dashboard's `/symbols/<SYMBOL>` page in Debian's Chromium: three real runs of one symbol with
 * promotion `auto` (promoted, rejected, promoted), then the page's inline SVG charts of candidate vs
 * production metrics and cost per day, and its promotion history; the runs page links to it and shows
 * each run's cost and status bar; Bull Board links back to the runs page. Screenshots are written to
 * var/test-output/symbol-page/ (or $TEST_OUTPUT_DIR).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createDashboard, listenDashboard, type RunningDashboard } from '../../dashboards/server.js';
import { LocalStore } from '../../src/storage/index.js';
import { REPO, fakeRecipe, runCli, sandbox, type Sandbox } from '../helpers/harness.js';
import { importMarketData } from '../helpers/marketData.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const OUT = process.env.TEST_OUTPUT_DIR ?? join(REPO, 'var/test-output/symbol-page');
const TOKEN = 'symbol-page-token-5e1';
/** Run date → the candidate's directionalHitRate. */
const RUNS: [string, string][] = [
  ['20260114', '0.55'],
  ['20260115', '0.5'],
  ['20260116', '0.6'],
];

describe('/symbols/<SYMBOL> in Chromium', () => {
  let sb: Sandbox;
  let dash: RunningDashboard;
  let browser: Browser;
  beforeAll(async () => {
    sb = await sandbox(inject('redisUrl'));
    for (const [date, hit] of RUNS) {
      // Auto promotion publishes only models trained on real (imported) market data.
      await importMarketData(sb.home, sb.env, 'BTCUSDT', date);
      const r = await runCli(
        [
          'run',
          '--symbols',
          'BTCUSDT',
          '--date',
          date,
          '--ensure-features',
          '--recipe',
          fakeRecipe,
          '--var',
          `hit_rate=${hit}`,
          '--promote',
          'auto',
        ],
        sb.env,
      );
      expect(r.code, r.stdout + r.stderr).toBe(0);
    }
    dash = await listenDashboard(
      createDashboard({
        prefix: sb.prefix,
        redis: sb.redis,
        store: new LocalStore(join(sb.home, 'store')),
        credentials: { token: TOKEN },
        readOnly: false,
        logger: pino({ level: 'silent' }),
      }),
      '127.0.0.1',
      0,
    );
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    mkdirSync(OUT, { recursive: true });
  }, 240_000);
  afterAll(async () => {
    await browser?.close();
    await dash?.close();
    await sb?.cleanup();
  });

  it('draws candidate vs production per date, the cost per day and the promotion history', async () => {
    const ctx = await browser.newContext({ extraHTTPHeaders: { authorization: `Bearer ${TOKEN}` } });
    const page = await ctx.newPage();
    await page.goto(new URL('/runs', dash.url).href);
    // The runs page: each run's cost and a bar of its statuses, and a link to the symbol's page.
    for (const [date] of RUNS) {
      await page.locator(`section[data-date="${date}"] [data-cost]`).waitFor();
      expect(await page.locator(`section[data-date="${date}"] [data-cost]`).innerText()).toMatch(
        /^cost \$\d+\.\d{4}/,
      );
      expect(
        await page
          .locator(`svg[data-chart="status-${date}"] rect[data-segment="success"]`)
          .getAttribute('data-count'),
      ).toBe('1');
    }
    await page.screenshot({ path: join(OUT, 'runs.png'), fullPage: true });
    await page
      .locator(`section[data-date="20260116"] tr[data-symbol="BTCUSDT"] td[data-col="history"] a`)
      .click();
    await page.waitForURL(/\/symbols\/BTCUSDT$/);

    // Four inline SVG charts, drawn by the browser (a real layout box, not just markup).
    for (const name of ['directionalHitRate', 'maxDrawdown', 'net_bps_after_costs', 'cost']) {
      const box = await page.locator(`svg[data-chart="${name}"]`).boundingBox();
      expect(box, name).not.toBeNull();
      expect(box!.width).toBeGreaterThan(300);
      expect(box!.height).toBeGreaterThan(100);
    }
    const points = (series: string) =>
      page
        .locator(`svg[data-chart="directionalHitRate"] circle[data-point="${series}"]`)
        .evaluateAll((els) => els.map((e) => [e.getAttribute('data-x'), Number(e.getAttribute('data-y'))]));
    expect(await points('candidate')).toEqual([
      ['01-14', 0.55],
      ['01-15', 0.5],
      ['01-16', 0.6],
    ]);
    // Production as each candidate was compared with it: none on the first date, then 0.55 twice.
    expect(await points('production')).toEqual([
      ['01-15', 0.55],
      ['01-16', 0.55],
    ]);
    // A higher hit rate is drawn higher (SVG y grows downwards).
    const cy = await page
      .locator('svg[data-chart="directionalHitRate"] circle[data-point="candidate"]')
      .evaluateAll((els) => els.map((e) => Number(e.getAttribute('cy'))));
    expect(cy[2]!).toBeLessThan(cy[0]!);
    expect(cy[0]!).toBeLessThan(cy[1]!);
    expect(await page.locator('svg[data-chart="cost"] rect[data-bar]').count()).toBe(3);
    // Hovering a point shows its value (the SVG <title>).
    expect(
      await page
        .locator('svg[data-chart="directionalHitRate"] circle[data-point="candidate"][data-x="01-16"] title')
        .textContent(),
    ).toBe('candidate 01-16: 0.6');

    // The promotion history: production now (0.6), the one it replaced (0.55) archived.
    const prod = await page
      .locator('table[data-promotions] tbody tr')
      .evaluateAll((rows) =>
        rows.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent ?? '')),
      );
    expect(prod).toHaveLength(2);
    expect(prod[0]!.slice(2, 5)).toEqual(['20260116', 'higher_hit_rate', '0.6000']);
    expect(prod[0]![0]).toBe('current');
    expect(prod[1]!.slice(2, 5)).toEqual(['20260114', 'no_production', '0.5500']);
    const decisions = await page
      .locator('table[data-days] tbody tr')
      .evaluateAll((rows) =>
        rows.map((r) => [r.getAttribute('data-date'), r.querySelectorAll('td')[3]!.textContent]),
      );
    expect(decisions).toEqual([
      ['20260116', 'promote'],
      ['20260115', 'reject'],
      ['20260114', 'promote'],
    ]);
    await page.screenshot({ path: join(OUT, 'symbol-BTCUSDT.png'), fullPage: true });

    // Bull Board links back to the runs pages (its header's links menu).
    await page.goto(new URL('/queues', dash.url).href);
    await page.locator('header ul li').last().locator('button').click();
    const runsItem = page.getByRole('menuitem', { name: 'Runs' });
    await runsItem.waitFor();
    await page.screenshot({ path: join(OUT, 'queues-menu.png') });
    await runsItem.click();
    await page.waitForURL(/\/runs$/);
    await page.locator('section[data-date="20260116"]').waitFor();
    expect((await page.request.get(new URL('/symbols/NOPE1', dash.url).href)).status()).toBe(404);
    await ctx.close();
  });
});
