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

/**
 * Waits until `name{labels}` of a running gateway satisfies `ok` (scraping every 50 ms; there is
 * no push from /metrics), and returns the value. For helpers that must wait for the gateway to
 * have seen something before they go on; tests assert with expect.poll or on their own reads.
 */
export async function waitForMetric(
  adminPort: number | undefined,
  name: string,
  labels: Record<string, string>,
  ok: (v: number) => boolean,
  timeoutMs = 10_000,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = await metric(adminPort, name, labels);
  while (!ok(last)) {
    if (Date.now() > deadline) throw new Error(`${name}${JSON.stringify(labels)} still ${last} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
    last = await metric(adminPort, name, labels);
  }
  return last;
}
