/**
 * A URL as it may be shown in a message or a log: user name and password (a Redis URL's
 * `redis://:password@host`) replaced by `***`. A string that does not parse as a URL is shown as
 * `(unparseable URL)`, since where its credentials end cannot be told.
 */
export function displayUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return '(unparseable URL)';
  }
  if (!u.username && !u.password) return url;
  u.username = '***';
  u.password = '';
  return u.toString();
}
