// Child process of crash.test.ts: appends forever with fsync 'always' from several concurrent
// appenders and prints "P <id> <tag>" once an append has resolved, and "A <id>" once an ack of it
// has resolved ("a <id>" just before acking; about every third entry is acked). The parent SIGKILLs it at a random moment.
import { Spool } from '../../../dist/forwarder/spool/index.js';
import pino from 'pino';

const [dir, runTag] = process.argv.slice(2);
const spool = await Spool.open({
  dir,
  maxBytes: 256 * 1024 * 1024,
  segmentBytes: 256 * 1024,
  fsync: 'always',
  logger: pino({ level: 'warn' }, pino.destination(2)),
});
process.stdout.write(`R ${JSON.stringify(spool.recovery)}\n`);
let n = 0;
async function appender(k) {
  for (;;) {
    const tag = `${runTag}-${k}-${n++}`;
    const size = 200 + ((n * 7919) % 4000);
    const [e] = await spool.append([{ stream: `s${k % 3}`, records: 1, payload: Buffer.from(tag + ':' + 'z'.repeat(size)) }]);
    // Pipes are synchronous on Linux: once written, the line is the parent's even if we die next.
    process.stdout.write(`P ${e.id} ${tag}\n`);
    if (n % 3 === 0) {
      // Announced first: once the ack is under way the entry may be gone, printed "A" or not.
      process.stdout.write(`a ${e.id}\n`);
      await spool.ack([e.id]);
      process.stdout.write(`A ${e.id}\n`);
    }
  }
}
await Promise.all(Array.from({ length: 8 }, (_, k) => appender(k)));
