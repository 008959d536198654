import { describe, expect, it } from 'vitest';
import { displayUrl } from '../../../src/util/displayUrl.js';

describe('displayUrl', () => {
  it('hides the credentials of a Redis URL and keeps where it points', () => {
    expect(displayUrl('redis://:s3cretpass@redis.internal:6380/2')).toBe('redis://***@redis.internal:6380/2');
    expect(displayUrl('rediss://default:s3cretpass@h:6379')).toBe('rediss://***@h:6379');
    expect(displayUrl('redis://127.0.0.1:6379')).toBe('redis://127.0.0.1:6379');
    expect(displayUrl('redis://user:p%40ss@h:1')).not.toContain('p%40ss');
  });

  it('shows nothing of a string that is not a URL', () => {
    expect(displayUrl('not a url :s3cretpass@')).toBe('(unparseable URL)');
  });
});
