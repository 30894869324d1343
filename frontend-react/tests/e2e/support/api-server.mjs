import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { distDir, repoRoot, resultsDir } from './paths.mjs';

function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

async function readiness(baseUrl) {
  try {
    const response = await fetch(`${baseUrl}/readyz`);
    const body = await response.text();
    return { ready: response.ok, status: response.status, body };
  } catch (error) {
    return { ready: false, status: null, body: String(error.cause ?? error) };
  }
}

/**
 * The API serving the built frontend: E2E_BASE_URL when given, otherwise
 * `uv run mushroom-api --port <free port>` started here with API_FRONTEND_DIR pointing at dist/.
 * Resolves to { baseUrl, ready, detail, stop }; `ready` false means /readyz never said ok.
 */
export async function startApi({ timeoutMs = Number(process.env.E2E_READY_TIMEOUT_MS ?? 180_000) } = {}) {
  const external = process.env.E2E_BASE_URL;
  if (external) {
    const baseUrl = external.replace(/\/+$/, '');
    const state = await readiness(baseUrl);
    return { baseUrl, ready: state.ready, detail: state.body, stop: async () => undefined };
  }
  if (!existsSync(join(distDir, 'index.html'))) {
    throw new Error(`${distDir} has no index.html: run \`npm run build\` first`);
  }
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const logPath = join(resultsDir, 'api-server.log');
  const ownStorage = process.env.E2E_STORAGE_URI ? null : mkdtempSync(join(tmpdir(), 'mushroom-e2e-'));
  const log = createWriteStream(logPath);
  const child = spawn('uv', ['run', 'mushroom-api', '--port', String(port), '--log-level', 'warning'], {
    cwd: repoRoot,
    env: {
      ...process.env,
      API_FRONTEND_DIR: distDir,
      // An empty storage root: no registry champion, so the API serves the bundled demo model, and the
      // feedback the test sends lands in a throw-away database.
      MUSHROOM_STORAGE_URI: process.env.E2E_STORAGE_URI ?? ownStorage,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  let exited = null;
  child.once('exit', (code, signal) => {
    exited = { code, signal };
  });

  const stop = async () => {
    if (!exited) {
      try {
        process.kill(-child.pid, 'SIGTERM');
        for (let waited = 0; waited < 10_000 && !exited; waited += 100) await sleep(100);
        if (!exited) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    if (ownStorage) rmSync(ownStorage, { recursive: true, force: true });
  };

  const started = Date.now();
  const deadline = started + timeoutMs;
  let state = { ready: false, status: null, body: '' };
  while (Date.now() < deadline) {
    if (exited) {
      const tail = readFileSync(logPath, 'utf8').split('\n').slice(-20).join('\n');
      throw new Error(`mushroom-api exited (${JSON.stringify(exited)}) before it was ready:\n${tail}`);
    }
    state = await readiness(baseUrl);
    if (state.ready) break;
    // Up but not ready (503: no model) is an answer: wait a little for a model being loaded, not the whole timeout.
    if (state.status === 503 && Date.now() - started > 30_000) break;
    await sleep(500);
  }
  return { baseUrl, ready: state.ready, detail: state.body, stop };
}
