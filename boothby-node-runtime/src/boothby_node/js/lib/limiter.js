'use strict';

/** A counting semaphore: at most `max` holders at once, the rest wait in arrival order. */
class ConcurrencyLimiter {
  constructor(max) {
    this.max = max;
    this.active = 0;
    this.waiting = [];
  }

  /** Returns true when acquire() would have to wait. */
  isFull() {
    return this.active >= this.max;
  }

  acquire() {
    if (this.active < this.max) {
      this.active += 1;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.waiting.push(resolve);
    });
  }

  release() {
    const next = this.waiting.shift();
    if (next) {
      // The slot passes straight to the next waiter, so `active` stays the same.
      next();
    } else {
      this.active -= 1;
    }
  }
}

module.exports = { ConcurrencyLimiter };
