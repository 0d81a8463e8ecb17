import { expect } from 'vitest';
import { PortcullisError } from '../../src/util/errors.js';

/** The stable code of the PortcullisError `p` rejects with; fails the test if it resolves. */
export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(PortcullisError);
    return (err as PortcullisError).code;
  }
  throw new Error('expected a rejection');
}
