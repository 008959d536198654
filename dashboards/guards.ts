import type { NextFunction, Request, Response } from 'express';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Read-only mode, enforced here rather than trusted to the UI: every request that is not GET, HEAD
 * or OPTIONS (Bull Board's retry, clean, promote, pause, add, obliterate..., anything added later)
 * is answered 405 before it reaches a handler. Bull Board's own `readOnlyMode` only hides the buttons.
 */
export function rejectWrites() {
  return (req: Request, res: Response, next: NextFunction): void => {
    if (SAFE_METHODS.has(req.method)) return next();
    res.setHeader('Allow', 'GET, HEAD');
    res.status(405).json({ error: 'the dashboard is read-only: write actions are disabled' });
  };
}

/**
 * Cross-site request guard for write requests: browsers send basic-auth credentials with requests
 * another site makes them send, so a write carrying an Origin (or, lacking one, a Referer) from a
 * different host is refused. Clients that send neither (curl, scripts) are unaffected.
 */
export function sameOriginWrites() {
  return (req: Request, res: Response, next: NextFunction): void => {
    if (SAFE_METHODS.has(req.method)) return next();
    const source = req.headers.origin ?? req.headers.referer;
    if (source === undefined || source === '') return next();
    let host: string | undefined;
    try {
      host = new URL(source).host;
    } catch {
      host = undefined;
    }
    if (host !== undefined && host === req.headers.host) return next();
    res.status(403).json({ error: 'cross-site write request refused' });
  };
}
