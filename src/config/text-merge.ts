/**
 * Keeps an operator's formatting through an edit. The yaml package keeps comments and key order,
 * but prints the whole file its own way (inline comments lose their alignment, flow lists their
 * spacing). So the store prints the document twice, before and after the edit, and applies only
 * the lines the edit changed to the operator's own text: a three-way merge by lines, with the
 * unedited printout as the base. Where an edit lands on a line the operator formatted differently,
 * that region comes out as yaml prints it; the caller checks the result means the same document.
 */

/** Line pairs (i, j) with a[i] === b[j] of a longest common subsequence; undefined beyond maxEdits. */
export function matchLines(a: readonly string[], b: readonly string[], maxEdits: number): Array<[number, number]> | undefined {
  let pre = 0;
  while (pre < a.length && pre < b.length && a[pre] === b[pre]) pre++;
  let suf = 0;
  while (suf < a.length - pre && suf < b.length - pre && a[a.length - 1 - suf] === b[b.length - 1 - suf]) suf++;
  const mid = myers(a.slice(pre, a.length - suf), b.slice(pre, b.length - suf), maxEdits);
  if (mid === undefined) return undefined;
  const pairs: Array<[number, number]> = [];
  for (let i = 0; i < pre; i++) pairs.push([i, i]);
  for (const [i, j] of mid) pairs.push([i + pre, j + pre]);
  for (let s = suf; s > 0; s--) pairs.push([a.length - s, b.length - s]);
  return pairs;
}

/** Myers' O((N+M)D) diff; keeps only the diagonals each step needs, so memory is O(D²). */
function myers(a: readonly string[], b: readonly string[], maxEdits: number): Array<[number, number]> | undefined {
  const n = a.length;
  const m = b.length;
  const max = n + m;
  if (max === 0) return [];
  const off = max + 1;
  const v = new Int32Array(2 * max + 3);
  const trace: Int32Array[] = [];
  const at = (w: Int32Array, d: number, k: number): number => w[k + d + 1] ?? 0;
  let found = -1;
  for (let d = 0; d <= Math.min(max, maxEdits) && found < 0; d++) {
    trace.push(v.slice(off - d - 1, off + d + 2));
    for (let k = -d; k <= d; k += 2) {
      const down = k === -d || (k !== d && (v[off + k - 1] ?? 0) < (v[off + k + 1] ?? 0));
      let x = down ? (v[off + k + 1] ?? 0) : (v[off + k - 1] ?? 0) + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) {
        x++;
        y++;
      }
      v[off + k] = x;
      if (x >= n && y >= m) {
        found = d;
        break;
      }
    }
  }
  if (found < 0) return undefined;
  const pairs: Array<[number, number]> = [];
  let x = n;
  let y = m;
  for (let d = found; d >= 0; d--) {
    const w = trace[d];
    if (w === undefined) break;
    const k = x - y;
    const down = k === -d || (k !== d && at(w, d, k - 1) < at(w, d, k + 1));
    const prevK = down ? k + 1 : k - 1;
    const prevX = d === 0 ? 0 : at(w, d, prevK);
    const prevY = d === 0 ? 0 : prevX - prevK;
    while (x > prevX && y > prevY) {
      x--;
      y--;
      pairs.push([x, y]);
    }
    x = prevX;
    y = prevY;
  }
  return pairs.reverse();
}

function sameLines(a: readonly string[], from: number, to: number, b: readonly string[], bFrom: number, bTo: number): boolean {
  if (to - from !== bTo - bFrom) return false;
  for (let i = 0; i < to - from; i++) if (a[from + i] !== b[bFrom + i]) return false;
  return true;
}

/**
 * A YAML line as it compares between the operator's text and yaml's printout of it: without the
 * spacing before an inline comment and the comment itself, runs of blanks as one. A comment-only
 * line keeps its text. Lines it makes equal by mistake are caught by the caller's check.
 */
export function yamlLineKey(line: string): string {
  const t = line.trim();
  if (t.startsWith('#')) return t;
  return t.replace(/\s+#.*$/, '').replace(/\s+/g, ' ');
}

/**
 * Three-way merge of line arrays: `ours` and `theirs` both derived from `base`. Regions only
 * `ours` changed keep `ours`; regions `theirs` changed take `theirs` (also where both changed).
 * `ours` is matched to `base` by `key` (formatting aside), `theirs` exactly.
 * undefined when either side is too far from the base to diff cheaply.
 */
export function mergeLines(
  base: readonly string[],
  ours: readonly string[],
  theirs: readonly string[],
  key: (line: string) => string = (l) => l,
  maxEdits = 2000,
): string[] | undefined {
  const toOurs = matchLines(base.map(key), ours.map(key), maxEdits);
  const toTheirs = matchLines(base, theirs, maxEdits);
  if (toOurs === undefined || toTheirs === undefined) return undefined;
  const mo = new Map(toOurs);
  const mt = new Map(toTheirs);
  const out: string[] = [];
  let ib = 0;
  let io = 0;
  let it = 0;
  while (ib < base.length || io < ours.length || it < theirs.length) {
    // Stable: the same base line sits next in all three.
    while (ib < base.length && mo.get(ib) === io && mt.get(ib) === it) {
      out.push(ours[io] ?? '');
      ib++;
      io++;
      it++;
    }
    // The next base line that all three share ends this unstable region.
    let kb = ib;
    while (kb < base.length && !(mo.has(kb) && mt.has(kb))) kb++;
    const ko = kb < base.length ? (mo.get(kb) ?? ours.length) : ours.length;
    const kt = kb < base.length ? (mt.get(kb) ?? theirs.length) : theirs.length;
    if (kb === ib && ko === io && kt === it) {
      if (ib >= base.length) break;
      continue;
    }
    const theirsChanged = !sameLines(theirs, it, kt, base, ib, kb);
    const pick = theirsChanged ? theirs.slice(it, kt) : ours.slice(io, ko);
    out.push(...pick);
    ib = kb;
    io = ko;
    it = kt;
  }
  return out;
}
