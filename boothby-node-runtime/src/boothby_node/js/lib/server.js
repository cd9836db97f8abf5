'use strict';

// The unix socket server: each connection is one avsc stateful server
// channel of the worker protocol, on which the deflector calls `invoke`.

const fs = require('node:fs');
const net = require('node:net');
const { formatError } = require('./errors');

/** Removes a socket file left by an earlier worker. Refuses to remove anything that is not a socket. */
function removeStaleSocket(socketPath) {
  let stats;
  try {
    stats = fs.lstatSync(socketPath);
  } catch (error) {
    if (error.code === 'ENOENT') {
      return;
    }
    throw error;
  }
  if (!stats.isSocket()) {
    throw new Error(`BOOTHBY_SOCKET ${socketPath} exists and is not a socket; remove it or choose another path`);
  }
  fs.unlinkSync(socketPath);
}

/**
 * Listens on `socketPath` and serves `invoke` calls with `invoker`. Calls
 * `onAllDisconnected` when the last open connection closes. Resolves to
 * {close()} once listening.
 */
function startServer({ socketPath, service, invoker, workerLog, onAllDisconnected }) {
  removeStaleSocket(socketPath);

  const rpcServer = service.createServer({ silent: true });
  rpcServer.onInvoke((invocation, callback) => {
    invoker.invoke(invocation).then(
      (result) => callback(null, result),
      (error) => {
        // Invoker.invoke() handles every function error itself, so this is
        // a defect in the worker; the client receives a system error.
        workerLog.error(`invocation failed inside the worker: ${formatError(error)}`, invocation.id);
        callback(error);
      },
    );
  });
  rpcServer.on('error', (error) => {
    const code = error.rpcCode ? `${error.rpcCode}: ` : '';
    workerLog.error(`RPC error: ${code}${formatError(error.cause || error)}`);
  });

  const sockets = new Set();
  const netServer = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', (error) => {
      workerLog.warn(`connection error: ${formatError(error)}`);
    });
    socket.on('close', () => {
      sockets.delete(socket);
      if (sockets.size === 0) {
        onAllDisconnected();
      }
    });

    const channel = rpcServer.createChannel(socket);
    channel.on('handshake', (request, response) => {
      if (response.match === 'NONE') {
        workerLog.warn('rejected a connection whose client protocol is not compatible with the worker protocol');
      }
    });
  });

  function close(callback) {
    netServer.close(callback);
    for (const socket of sockets) {
      socket.destroy();
    }
  }

  return new Promise((resolve, reject) => {
    netServer.once('error', reject);
    netServer.listen(socketPath, () => {
      netServer.removeListener('error', reject);
      netServer.on('error', (error) => workerLog.error(`socket server error: ${formatError(error)}`));
      resolve({ close });
    });
  });
}

module.exports = { startServer, removeStaleSocket };
