'use strict';

// Process-wide handlers for uncaught exceptions and unhandled rejections.
// Node runs these handlers in the async context of the failing callback or
// promise, so the AsyncLocalStorage store names the invocation that caused
// the error, if any. The worker keeps running in every case.

const { formatError } = require('./errors');

/**
 * Installs the handlers. An error attributed to an invocation that has not
 * completed completes it as failed. Any other error becomes a warning on
 * stderr, with the request id when one is known.
 */
function installUncaughtHandlers(storage, workerLog) {
  function handle(kind, error) {
    try {
      const store = storage.getStore();
      if (store && !store.completed) {
        store.complete({ failed: true, error, source: kind });
        return;
      }
      const when = store ? `after request ${store.requestId} completed` : 'outside any invocation';
      workerLog.warn(`${kind} ${when}: ${formatError(error)}`, store ? store.requestId : null);
    } catch {
      // Nothing is left to report to; the worker must not crash here.
    }
  }

  process.on('uncaughtException', (error) => handle('uncaught exception', error));
  process.on('unhandledRejection', (reason) => handle('unhandled rejection', reason));
}

module.exports = { installUncaughtHandlers };
