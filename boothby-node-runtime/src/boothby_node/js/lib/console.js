'use strict';

// Console capture. Every console call made while an invocation runs,
// including from timers and promises the invocation started, becomes one
// LogRecord of that invocation. AsyncLocalStorage carries the invocation
// across asynchronous calls, so concurrent invocations keep their records
// apart. Calls outside any invocation, or after it completed, go to stderr.

const util = require('node:util');
const { performance } = require('node:perf_hooks');
const { limitText } = require('./text');
const { formatLine } = require('./stderr');

const MAX_MESSAGE_BYTES = 64 * 1024;
const MAX_RECORDS = 1000;
const MAX_TOTAL_BYTES = 1024 * 1024;

// Console method → LogRecord level.
const METHOD_LEVELS = {
  log: 'info',
  info: 'info',
  dir: 'info',
  debug: 'debug',
  warn: 'warn',
  error: 'error',
  trace: 'error',
};

/**
 * The records captured for one invocation. Once a record would pass
 * MAX_RECORDS or MAX_TOTAL_BYTES (the sum of the messages' UTF-8 bytes), it
 * and every later record are only counted in `dropped`.
 */
class InvocationLog {
  constructor() {
    this.records = [];
    this.totalBytes = 0;
    this.dropped = 0;
    this.full = false;
    this.closed = false;
  }

  add(level, message) {
    if (this.full) {
      this.dropped += 1;
      return;
    }
    const size = Buffer.byteLength(message, 'utf8');
    if (this.records.length >= MAX_RECORDS || this.totalBytes + size > MAX_TOTAL_BYTES) {
      this.full = true;
      this.dropped += 1;
      return;
    }
    this.records.push({ timestamp_ms: nowMs(), level, message });
    this.totalBytes += size;
  }

  /** Stops capturing and returns the records and the dropped count. */
  close() {
    this.closed = true;
    return { logs: this.records, logsDropped: this.dropped };
  }
}

/** Milliseconds since the Unix epoch, with a fractional part. */
function nowMs() {
  return performance.timeOrigin + performance.now();
}

function formatMessage(args) {
  try {
    return util.format(...args);
  } catch (error) {
    let reason;
    try {
      reason = String(error && error.message);
    } catch {
      reason = 'unknown reason';
    }
    return `[boothby-worker: the log message could not be formatted: ${reason}]`;
  }
}

function formatDir(value, options) {
  try {
    return util.inspect(value, { customInspect: false, ...options });
  } catch {
    return formatMessage([value]);
  }
}

function formatTrace(args, traceFunction) {
  // The same output as Node's console.trace: "Trace: <message>" and the stack.
  const trace = { name: 'Trace', message: formatMessage(args) };
  try {
    Error.captureStackTrace(trace, traceFunction);
    return String(trace.stack);
  } catch {
    return `Trace: ${trace.message}`;
  }
}

/**
 * Replaces the global console's log, info, warn, error, debug, trace and dir
 * methods. `storage` is the AsyncLocalStorage whose store, when present, has
 * `requestId` and `log` (an InvocationLog). `stderr` is a StderrWriter.
 * Console methods that Node builds on these (count, assert, table, timeEnd,
 * group) are captured too, since Node calls them through `this`.
 */
function installConsoleCapture(storage, stderr) {
  function capture(level, message) {
    try {
      const text = limitText(message, MAX_MESSAGE_BYTES);
      const store = storage.getStore();
      if (store && !store.log.closed) {
        store.log.add(level, text);
      } else {
        stderr.writeLine(formatLine(level, store ? store.requestId : null, text));
      }
    } catch {
      // A log call does not throw into the function, so a failure here
      // loses this one message.
    }
  }

  for (const [method, level] of Object.entries(METHOD_LEVELS)) {
    let replacement;
    if (method === 'dir') {
      replacement = function dir(value, options) {
        capture(level, formatDir(value, options));
      };
    } else if (method === 'trace') {
      replacement = function trace(...args) {
        capture(level, formatTrace(args, trace));
      };
    } else {
      replacement = function log(...args) {
        capture(level, formatMessage(args));
      };
    }
    console[method] = replacement;
  }
}

module.exports = {
  InvocationLog,
  installConsoleCapture,
  MAX_MESSAGE_BYTES,
  MAX_RECORDS,
  MAX_TOTAL_BYTES,
};
