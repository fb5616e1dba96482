import { describe, expect, it } from 'vitest';
import { Authenticator } from './authenticator.js';

describe('Authenticator', () => {
  const auth = new Authenticator({ billing: 'billing-token-0123456789', shop: 'shop-token-0123456789' });

  it('finds the source of a token, and nothing for an unknown or missing one', () => {
    expect(auth.enabled).toBe(true);
    expect(auth.sourceOf('shop-token-0123456789')).toBe('shop');
    expect(auth.sourceOf('shop-token-012345678')).toBeUndefined();
    expect(auth.sourceOf('')).toBeUndefined();
    expect(auth.sourceOf(undefined)).toBeUndefined();
  });

  it('reads a bearer header', () => {
    expect(auth.sourceOfHeader('Bearer billing-token-0123456789')).toBe('billing');
    expect(auth.sourceOfHeader('bearer billing-token-0123456789')).toBe('billing');
    expect(auth.sourceOfHeader('Basic billing-token-0123456789')).toBeUndefined();
    expect(auth.sourceOfHeader(undefined)).toBeUndefined();
  });

  it('is disabled without tokens', () => {
    expect(new Authenticator({}).enabled).toBe(false);
  });
});
