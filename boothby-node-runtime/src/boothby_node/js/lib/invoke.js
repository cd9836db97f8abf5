'use strict';

// Running one invocation: build the event and context, call the handler
// inside its own AsyncLocalStorage store, take the first completion and map
// it to a WorkerResult.

const { buildEvent } = require('./event');
const { createContext } = require('./context');
const { InvocationLog, MAX_MESSAGE_BYTES } = require('./console');
const { RuntimeError, formatError } = require('./errors');
const { ConcurrencyLimiter } = require('./limiter');
const { successResult, errorResult } = require('./result');
const { limitText } = require('./text');

/** Summarises an outcome for the warning about a later completion. */
function describeOutcome(outcome) {
  if (outcome.failed) {
    return `${outcome.source} with error ${formatError(outcome.error)}`;
  }
  return `${outcome.source} with a value`;
}

/**
 * Calls the handler and reports its completion through `complete`. A
 * returned promise (or other thenable) completes when it settles. A plain
 * return value completes at once when the handler declares fewer than three
 * parameters; a handler with three or more completes through its callback.
 */
function callHandler(handler, event, context, callback, complete) {
  let returned;
  try {
    returned = handler(event, context, callback);
  } catch (error) {
    complete({ failed: true, error, source: 'thrown exception' });
    return;
  }

  let then;
  try {
    const canBeThenable = returned !== null && (typeof returned === 'object' || typeof returned === 'function');
    then = canBeThenable ? returned.then : undefined;
  } catch (error) {
    complete({ failed: true, error, source: 'thrown exception' });
    return;
  }

  if (typeof then === 'function') {
    try {
      then.call(
        returned,
        (value) => complete({ failed: false, value, source: 'promise' }),
        (error) => complete({ failed: true, error, source: 'promise rejection' }),
      );
    } catch (error) {
      complete({ failed: true, error, source: 'thrown exception' });
    }
  } else if (handler.length < 3) {
    complete({ failed: false, value: returned, source: 'return value' });
  }
}

/**
 * Runs invocations of one handler, at most `config.concurrency` at once.
 * `storage` is the AsyncLocalStorage that console capture and the process's
 * error handlers read. Each store has `requestId`, `log` (an InvocationLog),
 * `completed` and `complete(outcome)`.
 */
class Invoker {
  constructor({ handler, config, storage, workerLog }) {
    this.handler = handler;
    this.config = config;
    this.storage = storage;
    this.workerLog = workerLog;
    this.limiter = new ConcurrencyLimiter(config.concurrency);
  }

  /** Runs one invocation and returns its WorkerResult. Never rejects. */
  async invoke(invocation) {
    if (this.limiter.isFull()) {
      this.workerLog.warn(
        `more than BOOTHBY_CONCURRENCY=${this.config.concurrency} invocations in flight; ` +
          'this one waits for a free slot',
        invocation.id,
      );
    }
    await this.limiter.acquire();
    try {
      return await this.run(invocation);
    } finally {
      this.limiter.release();
    }
  }

  async run(invocation) {
    const log = new InvocationLog();
    let resolveCompletion;
    const completion = new Promise((resolve) => {
      resolveCompletion = resolve;
    });

    const store = {
      requestId: invocation.id,
      log,
      completed: false,
      complete: (outcome) => {
        if (store.completed) {
          this.warnLateCompletion(store, outcome);
          return;
        }
        store.completed = true;
        resolveCompletion(outcome);
      },
    };

    let event;
    try {
      event = buildEvent(invocation);
    } catch (error) {
      store.complete({
        failed: true,
        error: new RuntimeError('Runtime.InvalidEvent', `the invocation could not be mapped to an event: ${formatError(error)}`, { cause: error }),
        source: 'event mapping',
      });
    }

    if (!store.completed) {
      const context = createContext(invocation, this.config, store.complete);
      const callback = (error, value) => {
        if (error !== undefined && error !== null) {
          store.complete({ failed: true, error, source: 'callback' });
        } else {
          store.complete({ failed: false, value, source: 'callback' });
        }
      };
      this.storage.run(store, () => callHandler(this.handler, event, context, callback, store.complete));
    }

    // This continuation runs outside the store, so nothing the worker does
    // from here on is attributed to the function.
    const outcome = await completion;
    const result = outcome.failed ? errorResult(outcome.error) : successResult(outcome.value);
    const { logs, logsDropped } = log.close();
    return { ...result, logs, logs_dropped: logsDropped };
  }

  warnLateCompletion(store, outcome) {
    const message = limitText(
      `boothby-worker: request ${store.requestId} already completed; ` +
        `ignoring a later completion by ${describeOutcome(outcome)}`,
      MAX_MESSAGE_BYTES,
    );
    if (store.log.closed) {
      this.workerLog.write('warn', store.requestId, message);
    } else {
      store.log.add('warn', message);
    }
  }
}

module.exports = { Invoker, callHandler };
