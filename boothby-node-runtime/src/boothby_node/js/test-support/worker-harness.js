'use strict';

// Test harness: starts worker.js as a real child process with a temporary
// socket and function directory, and talks to it with avsc's RPC client.

const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { loadService } = require('../lib/protocol');

const WORKER_PATH = path.resolve(__dirname, '..', 'worker.js');
const SCHEMAS_DIR =
  process.env.BOOTHBY_SCHEMAS || path.resolve(__dirname, '../../../../../boothby-core/src/boothby/schemas');
const READY_TIMEOUT_MS = 10000;
const CALL_TIMEOUT_MS = 10000;
const EXIT_TIMEOUT_MS = 10000;

let cachedService;

/** Returns the worker protocol Service built from the repository's schema files. */
function workerService() {
  cachedService ??= loadService(SCHEMAS_DIR);
  return cachedService;
}

/** Returns an Invocation record with test defaults, overridden by `fields`. */
function makeInvocation(fields = {}) {
  const now = Date.now();
  return {
    id: crypto.randomUUID(),
    function: 'test-fn',
    deadline_ms: now + 30000,
    received_ms: now,
    reply_to: 'test-reply',
    method: 'GET',
    path: '/',
    raw_path: '/',
    query_string: '',
    query: [],
    headers: [],
    body: null,
    source_ip: '127.0.0.1',
    protocol: 'HTTP/1.1',
    ...fields,
  };
}

function writeFiles(directory, files) {
  for (const [relativePath, content] of Object.entries(files)) {
    const filePath = path.join(directory, relativePath);
    fs.mkdirSync(path.dirname(filePath), { recursive: true });
    fs.writeFileSync(filePath, content);
  }
}

/** Resolves with the first line read from `stream`, or rejects when it ends first or after `timeoutMs`. */
function readFirstLine(stream, timeoutMs) {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(() => finish(new Error(`no readiness line within ${timeoutMs} ms`)), timeoutMs);
    function finish(error, line) {
      clearTimeout(timer);
      stream.removeListener('data', onData);
      stream.removeListener('end', onEnd);
      if (error) {
        reject(error);
      } else {
        resolve(line);
      }
    }
    function onData(chunk) {
      buffered += chunk.toString('utf8');
      const newline = buffered.indexOf('\n');
      if (newline !== -1) {
        finish(null, buffered.slice(0, newline));
      }
    }
    function onEnd() {
      finish(new Error(`readiness fd closed without a full line; got ${JSON.stringify(buffered)}`));
    }
    stream.on('data', onData);
    stream.on('end', onEnd);
  });
}

/** Resolves with {code, signal} when `child` exits, or rejects after `timeoutMs`. */
function waitForExit(child, timeoutMs = EXIT_TIMEOUT_MS) {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker ${child.pid} did not exit within ${timeoutMs} ms`)), timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
}

/** An RPC client connection to a worker's socket. */
class WorkerClient {
  constructor(socketPath, service = workerService()) {
    this.client = service.createClient({ buffering: true });
    this.socket = net.connect(socketPath);
    this.socket.on('error', () => {
      // The tests see failures through the calls; an unhandled socket error
      // would crash the test process instead.
    });
    this.client.createChannel(this.socket);
  }

  /** Sends one invoke call and resolves with the WorkerResult. */
  invoke(invocation, timeoutMs = CALL_TIMEOUT_MS) {
    return new Promise((resolve, reject) => {
      this.client.invoke(invocation, { timeout: timeoutMs }, (error, result) => {
        if (error) {
          reject(error);
        } else {
          resolve(result);
        }
      });
    });
  }

  close() {
    this.client.destroyChannels({ noWait: true });
    this.socket.destroy();
  }
}

/**
 * Starts a worker for a function made of `files` (relative path → content)
 * and waits for its readiness line. Returns a handle with `ready` (the parsed
 * line), `invoke()`, `stderr()`, `exited()` and `stop()`. Pass the handle's
 * stop to t.after() so every worker is ended.
 */
async function startWorker({ files, handler = 'index.handler', env = {} }) {
  const tempDir = fs.mkdtempSync(path.join(os.tmpdir(), 'boothby-worker-test-'));
  const functionDir = path.join(tempDir, 'function');
  fs.mkdirSync(functionDir);
  writeFiles(functionDir, files);
  const socketPath = path.join(tempDir, 'worker.sock');

  const child = spawn(process.execPath, [WORKER_PATH], {
    cwd: tempDir,
    env: {
      PATH: process.env.PATH,
      BOOTHBY_SOCKET: socketPath,
      BOOTHBY_SCHEMAS: SCHEMAS_DIR,
      BOOTHBY_FUNCTION_DIR: functionDir,
      BOOTHBY_HANDLER: handler,
      BOOTHBY_FUNCTION_NAME: 'test-fn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
  });
  let stdoutText = '';
  let stderrText = '';
  child.stdout.on('data', (chunk) => {
    stdoutText += chunk.toString('utf8');
  });
  child.stderr.on('data', (chunk) => {
    stderrText += chunk.toString('utf8');
  });
  const exitPromise = waitForExit(child, 3600 * 1000);

  let client = null;
  const handle = {
    child,
    socketPath,
    functionDir,
    ready: null,
    stdout: () => stdoutText,
    stderr: () => stderrText,
    exited: (timeoutMs = EXIT_TIMEOUT_MS) => waitForExit(child, timeoutMs),

    /** Opens a new RPC connection to the worker. */
    connect(service) {
      return new WorkerClient(socketPath, service);
    },

    /** Invokes the function on the handle's shared connection. */
    invoke(fields = {}, timeoutMs) {
      client ??= new WorkerClient(socketPath);
      return client.invoke(makeInvocation(fields), timeoutMs);
    },

    /** Closes the shared connection, if one was opened. */
    disconnect() {
      if (client) {
        client.close();
        client = null;
      }
    },

    /** Ends the worker (SIGKILL if SIGTERM is not enough) and removes its temporary files. */
    async stop() {
      handle.disconnect();
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        try {
          await waitForExit(child, 3000);
        } catch {
          child.kill('SIGKILL');
          await exitPromise;
        }
      }
      fs.rmSync(tempDir, { recursive: true, force: true });
    },
  };

  try {
    handle.ready = JSON.parse(await readFirstLine(child.stdio[3], READY_TIMEOUT_MS));
  } catch (error) {
    await handle.stop();
    throw new Error(`${error.message}; worker stderr:\n${stderrText}`, { cause: error });
  }
  return handle;
}

/** Returns avsc-decoded Pair records as [name, value] arrays, which deepEqual can compare. */
function pairsOf(pairs) {
  return pairs.map((pair) => [pair.name, pair.value]);
}

/**
 * Polls `predicate` every 10 ms until it returns true, for at most
 * `timeoutMs`. Rejects with `message` on timeout.
 */
async function waitUntil(predicate, message, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting until ${message}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

module.exports = { startWorker, makeInvocation, pairsOf, workerService, waitForExit, waitUntil, WorkerClient, SCHEMAS_DIR };
