'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const { test } = require('node:test');
const { startWorker, makeInvocation, waitUntil } = require('../test-support/worker-harness');

const ECHO_HANDLER = 'exports.handler = async () => ({ statusCode: 200, body: "ok" });\n';

async function startAndStop(t, options) {
  const worker = await startWorker(options);
  t.after(() => worker.stop());
  return worker;
}

test('ready line names the worker pid', async (t) => {
  const worker = await startAndStop(t, { files: { 'index.js': ECHO_HANDLER } });

  assert.deepEqual(worker.ready, { status: 'ready', pid: worker.child.pid });
  const result = await worker.invoke();
  assert.equal(result.status, 200);
});

test('stale socket file is replaced', async (t) => {
  const first = await startAndStop(t, { files: { 'index.js': ECHO_HANDLER } });
  // A SIGKILL leaves the socket file behind.
  first.child.kill('SIGKILL');
  await first.exited();
  assert.ok(fs.existsSync(first.socketPath));

  const second = await startAndStop(t, {
    files: { 'index.js': ECHO_HANDLER },
    env: { BOOTHBY_SOCKET: first.socketPath },
  });
  assert.equal(second.ready.status, 'ready');
});

const FAILED_STARTS = [
  {
    name: 'syntax error',
    files: { 'index.js': 'exports.handler = async () => {\n' },
    expectedError: /^SyntaxError: /,
  },
  {
    name: 'missing export',
    files: { 'index.js': 'exports.other = async () => 1;\n' },
    expectedError: /^Runtime\.HandlerNotFound: index\.handler is undefined or not exported/,
  },
  {
    name: 'export not a function',
    files: { 'index.js': 'exports.handler = 42;\n' },
    expectedError: /^Runtime\.HandlerNotFound: index\.handler is a number, not a function/,
  },
  {
    name: 'exception at load',
    files: { 'index.js': 'class ConfigError extends Error {}\nthrow new ConfigError("no database url");\n' },
    expectedError: /^ConfigError: no database url$/,
  },
  {
    name: 'missing module file',
    files: { 'other.js': ECHO_HANDLER },
    expectedError: /^Runtime\.ImportModuleError: cannot find handler module "index"/,
  },
  {
    name: 'missing dependency',
    files: { 'index.js': 'require("./not-there");\n' + ECHO_HANDLER },
    expectedError: /^Error: Cannot find module '\.\/not-there'/,
  },
  {
    name: 'malformed handler name',
    files: { 'index.js': ECHO_HANDLER },
    handler: 'index',
    expectedError: /^Runtime\.MalformedHandlerName: /,
  },
  {
    name: 'handler outside function directory',
    files: { 'index.js': ECHO_HANDLER },
    handler: '../index.handler',
    expectedError: /^Runtime\.MalformedHandlerName: .*outside the function directory/,
  },
  {
    name: 'top-level await rejection',
    files: { 'index.mjs': 'await Promise.reject(new RangeError("bad start"));\nexport const handler = async () => 1;\n' },
    expectedError: /^RangeError: bad start$/,
  },
  {
    name: 'top-level await never settles',
    files: { 'index.mjs': 'await new Promise(() => {});\nexport const handler = async () => 1;\n' },
    expectedError: /^Runtime\.ImportModuleError: loading index\.handler never finished/,
  },
  {
    name: 'missing schemas directory',
    files: { 'index.js': ECHO_HANDLER },
    env: { BOOTHBY_SCHEMAS: '/nonexistent/boothby-schemas' },
    expectedError: /^Error: cannot read schema file \/nonexistent\/boothby-schemas\/worker\.avpr/,
  },
  {
    name: 'invalid concurrency setting',
    files: { 'index.js': ECHO_HANDLER },
    env: { BOOTHBY_CONCURRENCY: 'many' },
    expectedError: /^Runtime\.InvalidConfiguration: environment variable BOOTHBY_CONCURRENCY must be an integer/,
  },
  {
    name: 'relative function directory',
    files: { 'index.js': ECHO_HANDLER },
    env: { BOOTHBY_FUNCTION_DIR: 'function' },
    expectedError: /^Runtime\.InvalidConfiguration: BOOTHBY_FUNCTION_DIR must be an absolute path/,
  },
];

for (const { name, files, handler, env, expectedError } of FAILED_STARTS) {
  test(`failed start: ${name}`, async (t) => {
    const worker = await startAndStop(t, { files, handler, env });

    assert.equal(worker.ready.status, 'failed');
    assert.match(worker.ready.error, expectedError);
    assert.ok(Array.isArray(worker.ready.trace));
    assert.ok(worker.ready.trace.every((line) => typeof line === 'string'));
    const { code } = await worker.exited();
    assert.equal(code, 1);
    await waitUntil(() => /start failed: /.test(worker.stderr()), 'stderr reports the failed start');
  });
}

test('failed start trace has load stack', async (t) => {
  const worker = await startAndStop(t, {
    files: { 'index.js': 'function explode() { throw new Error("at load"); }\nexplode();\n' },
  });

  assert.equal(worker.ready.error, 'Error: at load');
  assert.equal(worker.ready.trace[0], 'Error: at load');
  assert.ok(worker.ready.trace.some((line) => line.includes('explode')));
});

const MODULE_LAYOUTS = [
  { name: 'nested path', handler: 'src/app.handler', files: { 'src/app.js': ECHO_HANDLER } },
  { name: '.cjs file', handler: 'index.handler', files: { 'index.cjs': ECHO_HANDLER } },
  {
    name: '.mjs file',
    handler: 'index.handler',
    files: { 'index.mjs': 'export const handler = async () => ({ statusCode: 200, body: "ok" });\n' },
  },
  {
    name: '.js in type module package',
    handler: 'index.handler',
    files: {
      'package.json': '{"type": "module"}',
      'index.js': 'export const handler = async () => ({ statusCode: 200, body: "ok" });\n',
    },
  },
  {
    name: 'folder with package.json main',
    handler: 'lib.handler',
    files: { 'lib/package.json': '{"main": "entry.js"}', 'lib/entry.js': ECHO_HANDLER },
  },
  { name: 'folder with index.js', handler: 'lib.handler', files: { 'lib/index.js': ECHO_HANDLER } },
  { name: 'dotted file name', handler: 'app.v2.handler', files: { 'app.v2.js': ECHO_HANDLER } },
  {
    name: 'module.exports function property',
    handler: 'index.handler',
    files: { 'index.js': 'module.exports = { handler: async () => ({ statusCode: 200, body: "ok" }) };\n' },
  },
];

for (const { name, handler, files } of MODULE_LAYOUTS) {
  test(`handler loads from ${name}`, async (t) => {
    const worker = await startAndStop(t, { files, handler });

    assert.equal(worker.ready.status, 'ready', worker.ready.error);
    const result = await worker.invoke();
    assert.equal(result.status, 200);
    assert.equal(result.body.toString(), 'ok');
  });
}

test('console at load goes to stderr', async (t) => {
  const worker = await startAndStop(t, {
    files: { 'index.js': 'console.log("loading config");\n' + ECHO_HANDLER },
  });

  await waitUntil(() => /\t-\tINFO\tloading config\n/.test(worker.stderr()), 'the load-time log line reaches stderr');
  assert.equal(worker.stdout(), '');
});

test('SIGTERM exits with code 0', async (t) => {
  const worker = await startAndStop(t, { files: { 'index.js': ECHO_HANDLER } });
  await worker.invoke();

  worker.child.kill('SIGTERM');
  const { code, signal } = await worker.exited();
  assert.equal(code, 0);
  assert.equal(signal, null);
  assert.equal(fs.existsSync(worker.socketPath), false);
});

test('disconnect exits with code 0', async (t) => {
  const worker = await startAndStop(t, { files: { 'index.js': ECHO_HANDLER } });
  await worker.invoke();

  worker.disconnect();
  const { code } = await worker.exited();
  assert.equal(code, 0);
  await waitUntil(() => /exiting: the deflector closed its connection/.test(worker.stderr()), 'stderr reports the exit');
});

test('disconnect keeps worker when disabled', async (t) => {
  const worker = await startAndStop(t, {
    files: { 'index.js': ECHO_HANDLER },
    env: { BOOTHBY_EXIT_ON_DISCONNECT: '0' },
  });
  await worker.invoke();
  worker.disconnect();

  const second = worker.connect();
  t.after(() => second.close());
  const result = await second.invoke(makeInvocation());
  assert.equal(result.status, 200);
  assert.equal(worker.child.exitCode, null);
});

test('worker waits for last connection', async (t) => {
  const worker = await startAndStop(t, { files: { 'index.js': ECHO_HANDLER } });
  const first = worker.connect();
  const second = worker.connect();
  await first.invoke(makeInvocation());
  await second.invoke(makeInvocation());

  first.close();
  // The worker must still respond on the open connection.
  const result = await second.invoke(makeInvocation());
  assert.equal(result.status, 200);

  second.close();
  const { code } = await worker.exited();
  assert.equal(code, 0);
});

test('missing readiness fd still serves', async (t) => {
  const { spawn } = require('node:child_process');
  const os = require('node:os');
  const path = require('node:path');
  const { SCHEMAS_DIR, WorkerClient, waitForExit } = require('../test-support/worker-harness');

  const tempDir = fs.mkdtempSync(path.join(os.tmpdir(), 'boothby-worker-test-'));
  fs.writeFileSync(path.join(tempDir, 'index.js'), ECHO_HANDLER);
  const socketPath = path.join(tempDir, 'worker.sock');
  // Only stdin, stdout and stderr: fd 3 in the worker is then one of Node's
  // own descriptors, which the worker must leave alone.
  const child = spawn(process.execPath, [path.resolve(__dirname, '..', 'worker.js')], {
    env: {
      PATH: process.env.PATH,
      BOOTHBY_SOCKET: socketPath,
      BOOTHBY_SCHEMAS: SCHEMAS_DIR,
      BOOTHBY_FUNCTION_DIR: tempDir,
      BOOTHBY_HANDLER: 'index.handler',
      BOOTHBY_FUNCTION_NAME: 'test-fn',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderrText = '';
  child.stderr.on('data', (chunk) => {
    stderrText += chunk.toString('utf8');
  });
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await waitForExit(child);
    }
    fs.rmSync(tempDir, { recursive: true, force: true });
  });

  await waitUntil(() => /ready: pid/.test(stderrText), 'the worker logs that it is ready');
  await waitUntil(() => /could not write the readiness line to fd 3: fd 3 is not a pipe, socket or file/.test(stderrText), 'stderr reports the missing fd');
  const client = new WorkerClient(socketPath);
  const result = await client.invoke(makeInvocation());
  assert.equal(result.status, 200);
  client.close();
  const { code } = await waitForExit(child);
  assert.equal(code, 0);
});
