/**
 * Declaring prom-client series one line each: the name, help and labels are what differ between
 * them, the registers are the same for all of a part's series.
 */
import client, { type Registry } from 'prom-client';

export interface SeriesDeclarers {
  counter<L extends string>(this: void, name: string, help: string, labelNames: L[]): client.Counter<L>;
  histogram<L extends string>(this: void, name: string, help: string, labelNames: L[], buckets: number[]): client.Histogram<L>;
}

export function seriesOn(registry: Registry): SeriesDeclarers {
  const registers = [registry];
  return {
    counter: (name, help, labelNames) => new client.Counter({ name, help, labelNames, registers }),
    histogram: (name, help, labelNames, buckets) => new client.Histogram({ name, help, labelNames, buckets, registers }),
  };
}
