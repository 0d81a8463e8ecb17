/** Reading a gateway's /metrics (Prometheus text format) from tests. */

export async function scrape(adminPort: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${adminPort}/metrics`);
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  return res.text();
}

/** Sample value of `name{labels}` (labels given as a subset), summed over matching series; NaN when absent. */
export function sampleSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    const ok = Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`));
    if (!ok) continue;
    found = true;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return found ? sum : NaN;
}

/** One metric of a running gateway, scraped now: `await expect.poll(() => metric(...)).toBe(n)` waits for a change. */
export async function metric(adminPort: number | undefined, name: string, labels: Record<string, string> = {}): Promise<number> {
  if (adminPort === undefined) throw new Error('the gateway has no admin listener');
  return sampleSum(await scrape(adminPort), name, labels);
}
