'use strict';

// The readiness line: one line of JSON written to BOOTHBY_READY_FD, after
// which the fd is closed.

const fs = require('node:fs');
const { describeError } = require('./errors');

const MAX_EAGAIN_RETRIES = 100;

function writeLine(fd, payload) {
  const bytes = Buffer.from(`${JSON.stringify(payload)}\n`, 'utf8');
  let offset = 0;
  let retries = 0;
  while (offset < bytes.length) {
    try {
      offset += fs.writeSync(fd, bytes, offset);
    } catch (error) {
      // A non-blocking pipe can refuse a write for a moment; the line is
      // small, so a few immediate retries are enough.
      if (error.code !== 'EAGAIN' || retries >= MAX_EAGAIN_RETRIES) {
        throw error;
      }
      retries += 1;
    }
  }
}

/**
 * Checks that `fd` was handed to the worker. When the parent passes no fd 3,
 * Node's own event loop uses that number (an epoll or eventfd descriptor,
 * which fstat shows as none of these types), and closing it aborts Node.
 */
function checkInheritedFd(fd) {
  const stats = fs.fstatSync(fd);
  if (!(stats.isFIFO() || stats.isSocket() || stats.isFile() || stats.isCharacterDevice())) {
    throw new Error(`fd ${fd} is not a pipe, socket or file; start the worker with BOOTHBY_READY_FD open for writing`);
  }
}

/**
 * Writes `payload` as the readiness line and closes `fd` (unless it is 0, 1
 * or 2). Returns null on success, or the error when `fd` is not open or not
 * writable, in which case it is left as it is.
 */
function reportReadiness(fd, payload) {
  try {
    checkInheritedFd(fd);
  } catch (error) {
    return error;
  }

  try {
    writeLine(fd, payload);
  } catch (error) {
    return error;
  } finally {
    // Standard input, output and error stay open even when used as the fd.
    if (fd > 2) {
      try {
        fs.closeSync(fd);
      } catch {
        // Already closed. The write error, if any, explains why.
      }
    }
  }
  return null;
}

/** Builds the readiness line of a worker that could not start. */
function failurePayload(error) {
  const { type, message, trace } = describeError(error);
  return { status: 'failed', error: `${type}: ${message}`, trace };
}

module.exports = { reportReadiness, failurePayload };
