import { describe, expect, it } from 'vitest';
import { authorized, credentialsFromEnv, describeAuth } from '../../../dashboards/auth.js';
import { ConfigError } from '../../../src/errors.js';

const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('dashboard credentials', () => {
  it('are read from DASHBOARD_USER + DASHBOARD_PASSWORD and/or DASHBOARD_TOKEN', () => {
    expect(credentialsFromEnv({ DASHBOARD_USER: 'ops', DASHBOARD_PASSWORD: 'pass-word-1' })).toEqual({
      basic: { user: 'ops', password: 'pass-word-1' },
    });
    expect(credentialsFromEnv({ DASHBOARD_TOKEN: 'tok-123456789' })).toEqual({ token: 'tok-123456789' });
    const both = credentialsFromEnv({
      DASHBOARD_USER: 'ops',
      DASHBOARD_PASSWORD: 'pass-word-1',
      DASHBOARD_TOKEN: 'tok-123456789',
    });
    expect(describeAuth(both)).toBe('basic + token');
  });

  it.each([
    [{}, /needs credentials/],
    [{ DASHBOARD_USER: '', DASHBOARD_PASSWORD: '', DASHBOARD_TOKEN: '' }, /needs credentials/],
    [{ DASHBOARD_USER: 'ops' }, /DASHBOARD_USER is set but DASHBOARD_PASSWORD is not/],
    [{ DASHBOARD_PASSWORD: 'pass-word-1' }, /DASHBOARD_PASSWORD is set but DASHBOARD_USER is not/],
    [{ DASHBOARD_USER: 'ops', DASHBOARD_PASSWORD: 'x7Qz9' }, /DASHBOARD_PASSWORD is shorter than 8/],
    [{ DASHBOARD_TOKEN: 'k3Vw8' }, /DASHBOARD_TOKEN is shorter than 8/],
    [{ DASHBOARD_USER: 'a:b', DASHBOARD_PASSWORD: 'pass-word-1' }, /must not contain ":"/],
  ])('refuses %j with one line naming the variable, never its value', (env, message) => {
    let err: unknown;
    try {
      credentialsFromEnv(env);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).not.toContain('\n');
    for (const v of Object.values(env)) if (v.length > 3) expect((err as Error).message).not.toContain(v);
  });
});

describe('authorized', () => {
  const creds = { basic: { user: 'ops', password: 'pass-word-1' }, token: 'tok-123456789' };

  it('accepts the basic pair and the bearer token', () => {
    expect(authorized(basic('ops', 'pass-word-1'), creds)).toBe(true);
    expect(authorized('Bearer tok-123456789', creds)).toBe(true);
    expect(authorized('bearer tok-123456789', creds)).toBe(true);
  });

  it('refuses anything else', () => {
    for (const header of [
      undefined,
      '',
      'Basic',
      basic('ops', 'pass-word-2'),
      basic('root', 'pass-word-1'),
      basic('ops', ''),
      basic('', ''),
      'Basic !!!notbase64',
      'Bearer tok-12345678',
      'Bearer tok-1234567890',
      'Bearer ',
      `Token tok-123456789`,
      // A password containing ':' splits at the first one only.
      basic('ops:pass', 'word-1'),
    ])
      expect(authorized(header, creds), String(header)).toBe(false);
  });

  it('only honours the schemes that are configured', () => {
    expect(authorized('Bearer tok-123456789', { basic: creds.basic })).toBe(false);
    expect(authorized(basic('ops', 'pass-word-1'), { token: creds.token })).toBe(false);
  });
});
