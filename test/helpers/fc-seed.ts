/**
 * Replaying a failed property: fast-check prints `{ seed, path }` when a property fails. Run the
 * same test with FC_SEED=<seed> (and FC_PATH=<path> to go straight to the shrunk case), e.g.
 *   FC_SEED=123 FC_PATH="4:1" npx vitest run test/policy/properties.unit.test.ts -t 'idempotent'
 * test/relay/concurrency.test.ts reads FC_SEED for its own seeded plan too.
 */
import fc from 'fast-check';

const seed = process.env.FC_SEED;
const path = process.env.FC_PATH;
if (seed !== undefined && seed !== '') {
  if (!/^-?\d+$/.test(seed)) throw new Error(`FC_SEED must be an integer, got ${seed}`);
  fc.configureGlobal({ ...fc.readConfigureGlobal(), seed: Number(seed), ...(path ? { path } : {}) });
}
