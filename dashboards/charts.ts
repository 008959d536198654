/**
 * Small server-rendered SVG charts for the dashboard pages (no script, no CDN): a line chart of
 * series over dates, a bar chart, and a stacked bar of counts. Every point carries a <title>, so a
 * browser shows its value on hover.
 */
import { esc } from './views.js';

export interface Series {
  name: string;
  color: string;
  /** One value per x label; null where there is none (a gap in the line). */
  values: (number | null)[];
  /** Dashed (e.g. production, the reference). */
  dashed?: boolean;
}

const W = 560;
const H = 200;
const PAD = { l: 56, r: 28, t: 24, b: 36 };

function niceRange(values: number[]): [number, number] {
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (!Number.isFinite(lo)) return [0, 1];
  if (lo === hi) {
    const d = Math.abs(lo) * 0.1 || 1;
    lo -= d;
    hi += d;
  }
  const pad = (hi - lo) * 0.08;
  return [lo - pad, hi + pad];
}

function fmt(v: number): string {
  const a = Math.abs(v);
  return a !== 0 && (a < 0.01 || a >= 1e5) ? v.toExponential(1) : Number(v.toPrecision(3)).toString();
}

/** The axes, grid and x labels shared by both chart kinds; returns the scales. */
function frame(title: string, labels: string[], range: [number, number]) {
  const iw = W - PAD.l - PAD.r;
  const ih = H - PAD.t - PAD.b;
  const step = labels.length > 1 ? iw / (labels.length - 1) : 0;
  const x = (i: number) => PAD.l + (labels.length > 1 ? i * step : iw / 2);
  const y = (v: number) => PAD.t + ih - ((v - range[0]) / (range[1] - range[0])) * ih;
  const parts: string[] = [`<text x="${PAD.l}" y="15" font-size="13" font-weight="600">${esc(title)}</text>`];
  for (let k = 0; k <= 4; k++) {
    const v = range[0] + ((range[1] - range[0]) * k) / 4;
    const yy = y(v).toFixed(1);
    parts.push(
      `<line x1="${PAD.l}" x2="${W - PAD.r}" y1="${yy}" y2="${yy}" stroke="#d0d7de" stroke-width="1"/>`,
      `<text x="${PAD.l - 6}" y="${yy}" font-size="10" text-anchor="end" dominant-baseline="middle" fill="#57606a">${esc(fmt(v))}</text>`,
    );
  }
  const every = Math.max(1, Math.ceil(labels.length / 8));
  labels.forEach((l, i) => {
    if (i % every === 0 || i === labels.length - 1)
      parts.push(
        `<text x="${x(i).toFixed(1)}" y="${H - PAD.b + 14}" font-size="10" text-anchor="middle" fill="#57606a">${esc(l)}</text>`,
      );
  });
  return { x, y, parts, ih };
}

function legend(series: { name: string; color: string; dashed?: boolean }[]): string {
  let lx = PAD.l;
  return series
    .map((s) => {
      const out = `<line x1="${lx}" x2="${lx + 16}" y1="${H - 8}" y2="${H - 8}" stroke="${s.color}" stroke-width="2"${
        s.dashed ? ' stroke-dasharray="4 3"' : ''
      }/><text x="${lx + 20}" y="${H - 4}" font-size="10">${esc(s.name)}</text>`;
      lx += 30 + s.name.length * 6;
      return out;
    })
    .join('');
}

function svg(name: string, body: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" data-chart="${esc(
    name,
  )}" font-family="system-ui,sans-serif">${body}</svg>`;
}

/** Lines of several series over the same x labels (dates). */
export function lineChart(name: string, title: string, labels: string[], series: Series[]): string {
  const all = series.flatMap((s) => s.values.filter((v): v is number => v !== null && Number.isFinite(v)));
  if (all.length === 0)
    return svg(name, `<text x="${PAD.l}" y="15" font-size="13">${esc(title)}: no data yet</text>`);
  const f = frame(title, labels, niceRange(all));
  for (const s of series) {
    let d = '';
    let pen = false;
    s.values.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) return void (pen = false);
      d += `${pen ? 'L' : 'M'}${f.x(i).toFixed(1)},${f.y(v).toFixed(1)}`;
      pen = true;
    });
    f.parts.push(
      `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="4 3"' : ''} data-series="${esc(s.name)}"/>`,
    );
    s.values.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) return;
      f.parts.push(
        `<circle cx="${f.x(i).toFixed(1)}" cy="${f.y(v).toFixed(1)}" r="3" fill="${s.color}" data-point="${esc(
          s.name,
        )}" data-x="${esc(labels[i])}" data-y="${v}"><title>${esc(`${s.name} ${labels[i]}: ${fmt(v)}`)}</title></circle>`,
      );
    });
  }
  return svg(name, f.parts.join('') + legend(series));
}

/** One bar per x label (e.g. dollars per day). */
export function barChart(
  name: string,
  title: string,
  labels: string[],
  values: number[],
  color: string,
): string {
  if (values.length === 0)
    return svg(name, `<text x="${PAD.l}" y="15" font-size="13">${esc(title)}: no data yet</text>`);
  const f = frame(title, labels, [0, Math.max(...values, 0) * 1.1 || 1]);
  const iw = W - PAD.l - PAD.r;
  const bw = Math.max(2, Math.min(28, (iw / Math.max(1, labels.length)) * 0.6));
  values.forEach((v, i) => {
    const top = f.y(v);
    f.parts.push(
      `<rect x="${(f.x(i) - bw / 2).toFixed(1)}" y="${top.toFixed(1)}" width="${bw.toFixed(1)}" height="${(
        PAD.t +
        f.ih -
        top
      ).toFixed(
        1,
      )}" fill="${color}" data-bar="${esc(labels[i])}" data-y="${v}"><title>${esc(`${labels[i]}: $${v.toFixed(4)}`)}</title></rect>`,
    );
  });
  return svg(name, f.parts.join(''));
}

/** A thin horizontal bar split by count (e.g. a run's symbols per status), with a legend in titles. */
export function stackedBar(
  name: string,
  parts: { label: string; count: number; color: string }[],
  width = 240,
): string {
  const total = parts.reduce((a, p) => a + p.count, 0);
  if (total === 0) return '';
  let x = 0;
  const rects = parts
    .filter((p) => p.count > 0)
    .map((p) => {
      const w = (p.count / total) * width;
      const r = `<rect x="${x.toFixed(1)}" y="0" width="${w.toFixed(1)}" height="12" fill="${p.color}" data-segment="${esc(
        p.label,
      )}" data-count="${p.count}"><title>${esc(`${p.count} ${p.label}`)}</title></rect>`;
      x += w;
      return r;
    })
    .join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} 12" width="${width}" height="12" role="img" data-chart="${esc(
    name,
  )}">${rects}</svg>`;
}
