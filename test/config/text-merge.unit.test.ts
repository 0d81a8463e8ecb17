import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { matchLines, mergeLines, yamlLineKey } from '../../src/config/text-merge.js';

const lines = fc.array(fc.constantFrom('a', 'b', 'c', 'd', 'e', '# x', ''), { maxLength: 30 });

describe('matchLines', () => {
  it('returns a longest common subsequence: in order, equal lines, as long as a simple LCS', () => {
    const lcsLength = (a: string[], b: string[]): number => {
      const t = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
      for (let i = 1; i <= a.length; i++)
        for (let j = 1; j <= b.length; j++) t[i]![j] = a[i - 1] === b[j - 1] ? t[i - 1]![j - 1]! + 1 : Math.max(t[i - 1]![j]!, t[i]![j - 1]!);
      return t[a.length]![b.length]!;
    };
    fc.assert(
      fc.property(lines, lines, (a, b) => {
        const pairs = matchLines(a, b, 1000) ?? [];
        for (let k = 0; k < pairs.length; k++) {
          const [i, j] = pairs[k]!;
          expect(a[i]).toBe(b[j]);
          if (k > 0) {
            expect(i).toBeGreaterThan(pairs[k - 1]![0]);
            expect(j).toBeGreaterThan(pairs[k - 1]![1]);
          }
        }
        expect(pairs.length).toBe(lcsLength(a, b));
      }),
    );
  });

  it('gives up beyond the edit bound instead of spending quadratic time', () => {
    const a = Array.from({ length: 200 }, (_, i) => `a${i}`);
    const b = Array.from({ length: 200 }, (_, i) => `b${i}`);
    expect(matchLines(a, b, 50)).toBeUndefined();
  });
});

describe('mergeLines', () => {
  it('with no edit it gives back ours; with ours equal to the base it gives back theirs', () => {
    fc.assert(
      fc.property(lines, lines, (base, other) => {
        expect(mergeLines(base, other, base)).toEqual(other);
        expect(mergeLines(base, base, other)).toEqual(other);
      }),
    );
  });

  it('keeps our formatting away from the edit and takes the edited line', () => {
    const base = ['proxy:', '  mode: enforce', '  timeouts:', '    # ms', '    idleMs: 5 # idle'];
    const ours = ['proxy:', '  mode: enforce', '  timeouts:        # ms', '    idleMs: 5       # idle'];
    const theirs = ['proxy:', '  mode: report', '  timeouts:', '    # ms', '    idleMs: 5 # idle'];
    expect(mergeLines(base, ours, theirs, yamlLineKey)).toEqual(['proxy:', '  mode: report', '  timeouts:        # ms', '    idleMs: 5       # idle']);
  });

  it('yamlLineKey ignores the spacing before an inline comment and the comment, not a comment-only line', () => {
    expect(yamlLineKey('    connectMs: 10000           # TCP connect')).toBe('connectMs: 10000');
    expect(yamlLineKey('  # a note')).toBe('# a note');
    expect(yamlLineKey('  hosts: [a,  b]')).toBe('hosts: [a, b]');
  });
});
