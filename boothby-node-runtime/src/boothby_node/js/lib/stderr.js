'use strict';

// Non-blocking writer for the worker's stderr lines.
//
// Node writes to process.stderr synchronously when stderr is a pipe (on
// Linux), so a deflector that stops reading stderr would stall the event loop.
// This writer hands lines to fs.write, which runs on libuv's thread pool, and
// keeps at most MAX_QUEUED_BYTES waiting. Lines beyond that are dropped and
// counted, and the count is reported once writing catches up.

const fs = require('node:fs');

const STDERR_FD = 2;
const MAX_QUEUED_BYTES = 1024 * 1024;
const RETRY_DELAY_MS = 20;

class StderrWriter {
  constructor(fd = STDERR_FD) {
    this.fd = fd;
    this.queue = [];
    this.queuedBytes = 0;
    this.droppedLines = 0;
    this.writing = false;
    this.broken = false;
    this.synchronous = false;
  }

  /** Queues `line` (which must end with a newline) for writing. */
  writeLine(line) {
    if (this.broken) {
      return;
    }
    const chunk = Buffer.from(line, 'utf8');
    if (this.synchronous) {
      this.writeSync(chunk);
      return;
    }
    if (this.queuedBytes + chunk.length > MAX_QUEUED_BYTES) {
      this.droppedLines += 1;
      return;
    }
    this.queue.push(chunk);
    this.queuedBytes += chunk.length;
    this.flush();
  }

  flush() {
    if (this.writing || this.broken || this.queue.length === 0) {
      return;
    }
    const chunk = this.queue.length === 1 ? this.queue[0] : Buffer.concat(this.queue);
    this.queue = [];
    this.queuedBytes = 0;
    this.writing = true;
    this.writeChunk(chunk);
  }

  writeChunk(chunk) {
    fs.write(this.fd, chunk, 0, chunk.length, null, (error, written) => {
      if (error && error.code === 'EAGAIN') {
        // stderr is a non-blocking pipe that is full: try again shortly.
        setTimeout(() => this.writeChunk(chunk), RETRY_DELAY_MS);
        return;
      }
      if (error) {
        // EPIPE (the reading end is closed) or EBADF (fd 2 is closed): stop writing.
        this.broken = true;
        this.writing = false;
        this.queue = [];
        this.queuedBytes = 0;
        return;
      }
      if (written < chunk.length) {
        this.writeChunk(chunk.subarray(written));
        return;
      }

      this.writing = false;
      if (this.droppedLines > 0) {
        const dropped = this.droppedLines;
        this.droppedLines = 0;
        this.writeLine(formatLine('WARN', null,
          `boothby-worker: dropped ${dropped} stderr lines because stderr was not read fast enough`));
      }
      this.flush();
    });
  }

  /**
   * Writes whatever is still queued, and every later line, with blocking
   * writes. For use just before the process exits, when a blocked write is
   * better than a lost line.
   */
  useSyncWrites() {
    this.synchronous = true;
    if (this.queue.length > 0) {
      const chunk = Buffer.concat(this.queue);
      this.queue = [];
      this.queuedBytes = 0;
      this.writeSync(chunk);
    }
    // NOTE: a chunk already passed to fs.write finishes on the thread pool
    // and can be cut off if the process exits first.
  }

  writeSync(chunk) {
    if (this.broken) {
      return;
    }
    try {
      fs.writeSync(this.fd, chunk);
    } catch {
      this.broken = true;
    }
  }
}

/**
 * Formats one stderr line as tab-separated "<ISO time> <request id or -> <LEVEL> <message>",
 * the layout Lambda uses for function logs.
 */
function formatLine(level, requestId, message) {
  const time = new Date().toISOString();
  return `${time}\t${requestId || '-'}\t${level.toUpperCase()}\t${message}\n`;
}

/**
 * The worker's own log: lines about the worker itself, prefixed with
 * "boothby-worker:", written through a StderrWriter.
 */
class WorkerLog {
  constructor(writer) {
    this.writer = writer;
  }

  write(level, requestId, message) {
    this.writer.writeLine(formatLine(level, requestId, message));
  }

  info(message, requestId = null) {
    this.write('info', requestId, `boothby-worker: ${message}`);
  }

  warn(message, requestId = null) {
    this.write('warn', requestId, `boothby-worker: ${message}`);
  }

  error(message, requestId = null) {
    this.write('error', requestId, `boothby-worker: ${message}`);
  }

  /** Switches to blocking writes; call before logging the last lines before an exit. */
  useSyncWrites() {
    this.writer.useSyncWrites();
  }
}

module.exports = { StderrWriter, WorkerLog, formatLine };
