/**
 * Faults injected on any /api request, independently of the endpoint: random 429s (Vast's three
 * body forms) and gateway errors (nginx 502/504 pages, a JSON 503).
 */
import type { SimContext } from './context.js';
import { fail, HttpReply, text } from './util.js';

const NGINX_502 =
  '<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n';
const NGINX_504 =
  '<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n<center><h1>504 Gateway Time-out</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n';

export function randomFault(ctx: SimContext): HttpReply | null {
  const { faults, rand } = ctx;
  const r429 = faults.rate429 ?? 0;
  if (r429 > 0 && rand() < r429) {
    ctx.injected['429']++;
    const form = Math.floor(rand() * 3);
    const hdr: Record<string, string> =
      faults.retryAfterSec !== undefined ? { 'Retry-After': String(faults.retryAfterSec) } : {};
    if (form === 0) return text(429, 'API requests too frequent: endpoint threshold=2.0', 'text/plain', hdr);
    if (form === 1)
      return new HttpReply(
        429,
        { detail: 'API requests too frequent endpoint threshold=2.0' },
        undefined,
        hdr,
      );
    return new HttpReply(
      429,
      { success: false, error: 'rate_limit_exceeded', msg: 'API requests too frequent' },
      undefined,
      hdr,
    );
  }
  const r5 = faults.rate5xx ?? 0;
  if (r5 > 0 && rand() < r5) {
    ctx.injected['5xx']++;
    const form = Math.floor(rand() * 3);
    if (form === 0) return text(502, NGINX_502, 'text/html');
    if (form === 1) return text(504, NGINX_504, 'text/html');
    return fail(503, 'service_unavailable', 'Service temporarily unavailable');
  }
  return null;
}
