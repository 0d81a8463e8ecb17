// Generator child process. Receives one task from the parent:
//   {type:'task', caseFile, params}
// imports the case module, runs its optional genSetup(params) (e.g. open the
// tunnels), reports {type:'ready'}, waits for {type:'go'}, runs
// genRun(state, params), and reports {type:'result', result, cpuSec, wallSec}.
// cpuSec is this process's own CPU during genRun, so the parent can show
// whether the generator was the bottleneck.
import { pathToFileURL } from 'node:url';

process.on('disconnect', () => process.exit(0)); // parent gone: never linger

process.once('message', async (task) => {
  try {
    const mod = await import(pathToFileURL(task.caseFile).href);
    const state = mod.genSetup ? await mod.genSetup(task.params) : undefined;
    process.send({ type: 'ready' });
    await new Promise((resolve) => process.once('message', (m) => m?.type === 'go' && resolve()));
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    const result = await mod.genRun(state, task.params);
    const c = process.cpuUsage(c0);
    const wallSec = Number(process.hrtime.bigint() - t0) / 1e9;
    process.send({ type: 'result', result, cpuSec: (c.user + c.system) / 1e6, cpuUserSec: c.user / 1e6, wallSec }, () => process.exit(0));
  } catch (err) {
    process.send({ type: 'error', message: String(err?.stack ?? err) }, () => process.exit(1));
  }
});
