import { createHash, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { ConfigError } from '../src/errors.js';

/**
 * Who may use the dashboard. Only ever built from the environment (never a flag or a config file,
 * which end up in logs and shell history), and never printed.
 */
export interface DashboardCredentials {
  basic?: { user: string; password: string };
  token?: string;
}

/** Shortest password or token accepted. */
export const MIN_SECRET_LENGTH = 8;

/**
 * Reads DASHBOARD_USER + DASHBOARD_PASSWORD (basic auth) and DASHBOARD_TOKEN (bearer token); either
 * or both. Throws ConfigError (one line, naming the variable, never its value) when there is
 * neither, when only half of the basic pair is set, or when a secret is too short.
 */
export function credentialsFromEnv(env: Record<string, string | undefined>): DashboardCredentials {
  const user = env.DASHBOARD_USER || undefined;
  const password = env.DASHBOARD_PASSWORD || undefined;
  const token = env.DASHBOARD_TOKEN || undefined;
  if (user !== undefined && password === undefined)
    throw new ConfigError('DASHBOARD_USER is set but DASHBOARD_PASSWORD is not');
  if (password !== undefined && user === undefined)
    throw new ConfigError('DASHBOARD_PASSWORD is set but DASHBOARD_USER is not');
  if (user !== undefined && user.includes(':'))
    throw new ConfigError('DASHBOARD_USER must not contain ":" (basic auth cannot carry it)');
  if (password !== undefined && password.length < MIN_SECRET_LENGTH)
    throw new ConfigError(`DASHBOARD_PASSWORD is shorter than ${MIN_SECRET_LENGTH} characters`);
  if (token !== undefined && token.length < MIN_SECRET_LENGTH)
    throw new ConfigError(`DASHBOARD_TOKEN is shorter than ${MIN_SECRET_LENGTH} characters`);
  if (user === undefined && token === undefined)
    throw new ConfigError(
      'the dashboard needs credentials: set DASHBOARD_USER and DASHBOARD_PASSWORD, or DASHBOARD_TOKEN',
    );
  return {
    ...(user !== undefined && password !== undefined ? { basic: { user, password } } : {}),
    ...(token !== undefined ? { token } : {}),
  };
}

/** Which schemes are configured, for the start-up line (names only). */
export function describeAuth(creds: DashboardCredentials): string {
  return [creds.basic ? 'basic' : '', creds.token ? 'token' : ''].filter(Boolean).join(' + ');
}

/** Equal-time comparison of two strings of any lengths (their digests are compared). */
function same(a: string, b: string): boolean {
  const da = createHash('sha256').update(a, 'utf8').digest();
  const db = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(da, db);
}

/** Whether an Authorization header value carries valid credentials. */
export function authorized(header: string | undefined, creds: DashboardCredentials): boolean {
  if (!header) return false;
  const space = header.indexOf(' ');
  if (space < 0) return false;
  const scheme = header.slice(0, space).toLowerCase();
  const value = header.slice(space + 1).trim();
  if (scheme === 'bearer' && creds.token) return same(value, creds.token);
  if (scheme === 'basic' && creds.basic) {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return false;
    // Both halves are always compared, so the time taken does not tell which one was wrong.
    const userOk = same(decoded.slice(0, colon), creds.basic.user);
    const passwordOk = same(decoded.slice(colon + 1), creds.basic.password);
    return userOk && passwordOk;
  }
  return false;
}

/**
 * Express middleware in front of every route: 401 (with a challenge the browser understands)
 * unless the request carries valid basic-auth credentials or the bearer token.
 */
export function requireAuth(creds: DashboardCredentials) {
  const challenges = [
    ...(creds.basic ? ['Basic realm="retrain dashboard", charset="UTF-8"'] : []),
    ...(creds.token ? ['Bearer realm="retrain dashboard"'] : []),
  ];
  return (req: Request, res: Response, next: NextFunction): void => {
    if (authorized(req.headers.authorization, creds)) return next();
    res.setHeader('WWW-Authenticate', challenges);
    res.setHeader('Cache-Control', 'no-store');
    res.status(401).type('text/plain').send('authentication required\n');
  };
}
