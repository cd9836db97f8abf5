'use strict';

// Boothby worker process: loads one Lambda-style handler and serves `invoke`
// calls from the deflector over Avro RPC on a unix socket. The environment
// contract is described in README.md beside this file.

const { AsyncLocalStorage } = require('node:async_hooks');
const { readConfig, readReadyFd } = require('./lib/config');
const { installConsoleCapture } = require('./lib/console');
const { logStreamName } = require('./lib/context');
const { RuntimeError, formatError } = require('./lib/errors');
const { Invoker } = require('./lib/invoke');
const { loadHandler } = require('./lib/loader');
const { loadService } = require('./lib/protocol');
const { reportReadiness, failurePayload } = require('./lib/ready');
const { startServer } = require('./lib/server');
const { StderrWriter, WorkerLog } = require('./lib/stderr');
const { installUncaughtHandlers } = require('./lib/uncaught');

// How long shutdown waits for the socket server to close before exiting anyway.
const SHUTDOWN_GRACE_MS = 2000;

const stderr = new StderrWriter();
const workerLog = new WorkerLog(stderr);

/** Reports a failed start on the readiness fd and stderr, then exits with code 1. */
function failStart(readyFd, error) {
  workerLog.useSyncWrites();
  const payload = failurePayload(error);
  workerLog.error(`start failed: ${payload.error}`);
  if (readyFd !== null) {
    const writeError = reportReadiness(readyFd, payload);
    if (writeError) {
      workerLog.error(`could not write the readiness line to fd ${readyFd}: ${writeError.message}`);
    }
  }
  process.exit(1);
}

async function main() {
  let config;
  try {
    config = readConfig(process.env);
  } catch (error) {
    failStart(readReadyFd(process.env), error);
  }
  config.logStreamName = logStreamName(config.functionVersion, process.pid, Date.now());

  const storage = new AsyncLocalStorage();
  installConsoleCapture(storage, stderr);
  installUncaughtHandlers(storage, workerLog);

  let service;
  let handler;
  // An ES module whose top-level await never settles leaves nothing for the
  // event loop to do, and Node would exit with code 0 without a readiness line.
  const onLoadStalled = () => {
    failStart(config.readyFd, new RuntimeError(
      'Runtime.ImportModuleError',
      `loading ${config.handlerSpec} never finished: its top-level await is still pending with nothing left to run`,
    ));
  };
  process.once('beforeExit', onLoadStalled);
  try {
    service = loadService(config.schemasDir);
    handler = await loadHandler(config.functionDir, config.handlerSpec);
  } catch (error) {
    failStart(config.readyFd, error);
  }
  process.removeListener('beforeExit', onLoadStalled);

  const invoker = new Invoker({ handler, config, storage, workerLog });
  let server;
  let shuttingDown = false;

  function shutdown(reason) {
    if (shuttingDown) {
      return;
    }
    shuttingDown = true;
    workerLog.useSyncWrites();
    workerLog.info(`exiting: ${reason}`);
    const exit = () => process.exit(0);
    setTimeout(exit, SHUTDOWN_GRACE_MS).unref();
    if (server) {
      server.close(exit);
    } else {
      exit();
    }
  }

  process.on('SIGTERM', () => shutdown('received SIGTERM'));
  process.on('SIGINT', () => shutdown('received SIGINT'));

  try {
    server = await startServer({
      socketPath: config.socketPath,
      service,
      invoker,
      workerLog,
      onAllDisconnected: () => {
        if (config.exitOnDisconnect) {
          shutdown('the deflector closed its connection (BOOTHBY_EXIT_ON_DISCONNECT=1)');
        }
      },
    });
  } catch (error) {
    failStart(config.readyFd, new RuntimeError(
      'Runtime.SocketError',
      `cannot listen on BOOTHBY_SOCKET ${config.socketPath}: ${formatError(error)}`,
      { cause: error },
    ));
  }

  const writeError = reportReadiness(config.readyFd, { status: 'ready', pid: process.pid });
  if (writeError) {
    workerLog.warn(`could not write the readiness line to fd ${config.readyFd}: ${writeError.message}`);
  }
  workerLog.info(
    `ready: pid ${process.pid}, handler ${config.handlerSpec} in ${config.functionDir}, ` +
      `socket ${config.socketPath}, concurrency ${config.concurrency}`,
  );
}

main().catch((error) => {
  // main() handles its own failures; reaching this is a defect in the worker.
  failStart(readReadyFd(process.env), error);
});
