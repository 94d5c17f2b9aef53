// A whole local Cascade for end-to-end tests written in JavaScript (clients
// nobody here wrote: the official SDKs in node_modules): an embedded Kafka
// broker, a SIMULATED OpenAI-compatible upstream that every provider points
// at, a worker and the ledger, as separate `cascade` processes sharing one
// bootstrap file, as scripts/demo.sh runs them.
//
//   import { startCascadeStack } from '../support/cascade_stack.mjs';
//   const stack = await startCascadeStack({ cascade: '/path/to/cascade' });
//   // clients: `cascade --bootstrap-file ${stack.bootstrapFile} ...` with env stack.env
//   await stack.stop();
//
// Every process gets a scratch directory and ports of its own (the ledger's
// HTTP API on a free port, no worker metrics endpoint), so tests run beside
// each other and beside a developer's own Cascade. The developer's CASCADE_*
// variables and provider keys are left out of every process's environment.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import process from 'node:process';
import { setTimeout as sleep } from 'node:timers/promises';

const PROVIDERS = ['OPENAI', 'ANTHROPIC', 'GEMINI', 'GROQ', 'DEEPSEEK', 'MISTRAL'];
const PROVIDER_KEYS = PROVIDERS.map((p) => `${p}_API_KEY`).concat(['OPENAI_BASE_URL']);

// A port nothing listens on right now (the OS's choice for port 0).
export async function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// Waits until check() returns a truthy value (polled every 100 ms).
export async function waitFor(what, check, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

// The parent's environment without anything that would change Cascade's
// behaviour (CASCADE_*, provider keys), plus `extra`.
export function cleanEnv(extra = {}) {
  const env = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (key.startsWith('CASCADE_') || PROVIDER_KEYS.includes(key)) continue;
    env[key] = value;
  }
  return { ...env, ...extra };
}

export async function startCascadeStack({ cascade, partitions = 4, keep = !!process.env.CASCADE_TEST_KEEP } = {}) {
  if (!cascade || !fs.existsSync(cascade)) throw new Error(`no cascade binary at ${cascade}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cascade-stack-'));
  const children = [];  // in start order
  const bootstrapFile = path.join(dir, 'bootstrap');
  const ledgerPort = await freePort();
  const ledgerUrl = `http://127.0.0.1:${ledgerPort}`;
  const env = {
    CASCADE_STATE_DIR: path.join(dir, 'state'),
    CASCADE_LEDGER_DIR: path.join(dir, 'ledger'),
    CASCADE_LEDGER_METRICS_LISTEN: `127.0.0.1:${ledgerPort}`,
    CASCADE_WORKER_METRICS_LISTEN: '',
    CASCADE_KAFKA_FETCH_WAIT_MAX_MS: '2',
  };

  const start = (name, args, extraEnv = {}) => {
    const log = path.join(dir, `${name}.log`);
    const out = fs.openSync(log, 'w');
    const child = spawn(cascade, args, { env: cleanEnv({ ...env, ...extraEnv }), stdio: ['ignore', out, out] });
    fs.closeSync(out);
    const entry = { name, child, log, exited: null };
    child.on('exit', (code, signal) => { entry.exited = { code, signal }; });
    children.push(entry);
    return entry;
  };
  const readLog = (entry) => (fs.existsSync(entry.log) ? fs.readFileSync(entry.log, 'utf8') : '');
  const alive = (entry) => {
    if (entry.exited) throw new Error(`${entry.name} exited (${JSON.stringify(entry.exited)}); its log:\n${readLog(entry)}`);
    return true;
  };

  const stack = {
    dir,
    bootstrapFile,
    ledgerUrl,
    // For clients: the same settings (CASCADE_LEDGER_METRICS_LISTEN tells
    // `cascade mcp` where the ledger is) and the simulated providers.
    env: { ...env },
    // The last lines of every process's log, for a failing test to print.
    logs(lines = 40) {
      return children.map((c) => `---- ${c.name} (${c.log})\n${readLog(c).split('\n').slice(-lines).join('\n')}`).join('\n');
    },
    // Stops the processes in reverse order (clients of the broker first),
    // each given 10 s to finish before it is killed; removes the directory.
    async stop() {
      for (const entry of [...children].reverse()) {
        if (entry.exited) continue;
        const exited = new Promise((resolve) => entry.child.once('exit', resolve));
        entry.child.kill('SIGTERM');
        const done = await Promise.race([exited.then(() => true), sleep(10000).then(() => false)]);
        if (!done) {
          entry.child.kill('SIGKILL');
          await exited;
        }
      }
      process.removeListener('exit', killAll);
      if (!keep) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  // A test that dies must not leave services running.
  const killAll = () => { for (const c of children) if (!c.exited) c.child.kill('SIGKILL'); };
  process.on('exit', killAll);

  try {
    const broker = start('broker', ['broker', '--bootstrap-file', bootstrapFile, '--partitions', String(partitions)]);
    await waitFor('the broker', () => alive(broker) && fs.existsSync(bootstrapFile) && fs.readFileSync(bootstrapFile, 'utf8').trim());
    const portFile = path.join(dir, 'upstream.port');
    const upstream = start('upstream', ['upstream', '--port-file', portFile, '--chunks', '3']);
    const port = await waitFor('the simulated upstream',
      () => alive(upstream) && fs.existsSync(portFile) && fs.readFileSync(portFile, 'utf8').trim());
    // The simulator speaks OpenAI's wire format, so every provider uses it.
    for (const p of PROVIDERS) {
      stack.env[`CASCADE_PROVIDERS_${p}_BASE_URL`] = `http://127.0.0.1:${port}/v1`;
      stack.env[`CASCADE_PROVIDERS_${p}_API_KEY_ENV`] = '';
      stack.env[`CASCADE_PROVIDERS_${p}_KIND`] = 'openai';
    }
    Object.assign(env, stack.env);
    const worker = start('worker', ['--bootstrap-file', bootstrapFile, 'worker']);
    const ledger = start('ledger', ['--bootstrap-file', bootstrapFile, 'ledger']);
    await waitFor('the ledger', async () => {
      alive(ledger);
      try {
        return (await fetch(`${ledgerUrl}/healthz`)).ok;
      } catch {
        return false;
      }
    });
    // The worker consumes from the start of the requests topic once it has
    // joined its group; it takes requests from here on.
    await waitFor('the worker', () => alive(worker) && /event loop\(s\) consuming/.test(readLog(worker)));
  } catch (error) {
    const logs = stack.logs();
    await stack.stop();
    throw new Error(`${error.message}\n${logs}`);
  }
  return stack;
}
