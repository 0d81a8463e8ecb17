import { isAlias, isMap, isScalar, isSeq, type Document, type LineCounter, type Node } from 'yaml';

export type PathSegments = ReadonlyArray<string | number>;
export interface Location {
  line: number;
  column: number;
}

/** Maps config paths back to where they are written in the YAML source. */
export class SourceMap {
  constructor(
    private readonly doc: Document | undefined,
    private readonly lines: LineCounter | undefined,
  ) {}

  /**
   * Where `path` is written: the value for scalars, the key for collections (that is the line a
   * reader looks at), the key for `at: 'key'` (unknown keys). A path that does not exist (a missing
   * required key) falls back to its nearest existing parent.
   */
  locate(path: PathSegments, at: 'value' | 'key' = 'value'): Location | undefined {
    if (!this.doc || !this.lines) return undefined;
    let node: unknown = this.doc.contents;
    let best: Node | null | undefined = isNode(node) ? node : undefined;
    for (let i = 0; i < path.length; i++) {
      node = this.resolve(node);
      const seg = path[i];
      const last = i === path.length - 1;
      if (isMap(node)) {
        const pair = node.items.find((p) => keyText(p.key) === String(seg));
        if (!pair) break;
        const value = this.resolve(pair.value);
        const keyNode = isNode(pair.key) ? pair.key : undefined;
        // An empty value (`key:`) has no useful position of its own.
        const scalarValue = isScalar(value) && value.range && value.range[1] > value.range[0];
        best = (last && at === 'key') || !scalarValue ? (keyNode ?? best) : value;
        node = value;
      } else if (isSeq(node)) {
        const idx = typeof seg === 'number' ? seg : Number(seg);
        const item = Number.isInteger(idx) ? node.items[idx] : undefined;
        if (item === undefined) break;
        const value = this.resolve(item);
        if (isNode(value)) best = value;
        node = value;
      } else {
        break;
      }
    }
    return best ? this.pos(best) : this.pos(undefined);
  }

  private resolve(node: unknown): unknown {
    if (this.doc && isAlias(node)) return node.resolve(this.doc);
    return node;
  }

  private pos(node: Node | null | undefined): Location | undefined {
    if (!this.lines) return undefined;
    const offset = node?.range?.[0] ?? 0;
    const { line, col } = this.lines.linePos(offset);
    return { line, column: col };
  }
}

function isNode(x: unknown): x is Node {
  return isMap(x) || isSeq(x) || isScalar(x) || isAlias(x);
}

function keyText(key: unknown): string | undefined {
  if (isScalar(key)) return String(key.value);
  if (typeof key === 'string' || typeof key === 'number') return String(key);
  return undefined;
}

/** Ajv's `instancePath` (JSON Pointer) → segments; array indexes become numbers where the data has an array. */
export function pointerToPath(pointer: string, data: unknown): Array<string | number> {
  if (pointer === '') return [];
  const out: Array<string | number> = [];
  let cur: unknown = data;
  for (const raw of pointer.slice(1).split('/')) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(cur) && /^\d+$/.test(seg)) {
      out.push(Number(seg));
      cur = cur[Number(seg)];
    } else {
      out.push(seg);
      cur = cur !== null && typeof cur === 'object' ? (cur as Record<string, unknown>)[seg] : undefined;
    }
  }
  return out;
}

/** The map key that starts at `offset` (where yaml reports a duplicate key), with its path. */
export function keyAt(doc: Document, offset: number): { path: Array<string | number>; key: string } | undefined {
  const walk = (node: unknown, path: Array<string | number>): { path: Array<string | number>; key: string } | undefined => {
    if (isMap(node)) {
      for (const pair of node.items) {
        const key = keyText(pair.key);
        if (key === undefined) continue;
        if (isNode(pair.key) && pair.key.range?.[0] === offset) return { path: [...path, key], key };
        const found = walk(pair.value, [...path, key]);
        if (found) return found;
      }
    } else if (isSeq(node)) {
      for (let i = 0; i < node.items.length; i++) {
        const found = walk(node.items[i], [...path, i]);
        if (found) return found;
      }
    }
    return undefined;
  };
  return walk(doc.contents, []);
}
