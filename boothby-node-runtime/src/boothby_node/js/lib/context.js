'use strict';

// The Lambda-style context object passed to the handler as its second argument.

/** Returns the log stream name "<YYYY/MM/DD>/[<version>]<pid>" for a worker started at `startMs`. */
function logStreamName(functionVersion, pid, startMs) {
  const [date] = new Date(startMs).toISOString().split('T');
  return `${date.replaceAll('-', '/')}/[${functionVersion}]${pid}`;
}

/**
 * Creates the context for one invocation. `complete(outcome)` ends the
 * invocation; the legacy done, succeed and fail methods call it with the same
 * outcomes as the handler's callback.
 */
function createContext(invocation, config, complete) {
  const functionName = config.functionName;
  return {
    awsRequestId: invocation.id,
    functionName,
    functionVersion: config.functionVersion,
    invokedFunctionArn: `arn:boothby:lambda:local:function:${functionName}`,
    memoryLimitInMB: String(config.memoryMb),
    logGroupName: `/boothby/${functionName}`,
    logStreamName: config.logStreamName,
    // Kept for handlers that set it. The worker returns the result as soon
    // as the handler completes, whatever this is set to.
    callbackWaitsForEmptyEventLoop: true,

    getRemainingTimeInMillis() {
      return Math.max(0, invocation.deadline_ms - Date.now());
    },

    done(error, value) {
      if (error !== undefined && error !== null) {
        complete({ failed: true, error, source: 'context.done' });
      } else {
        complete({ failed: false, value, source: 'context.done' });
      }
    },

    succeed(value) {
      complete({ failed: false, value, source: 'context.succeed' });
    },

    fail(error) {
      complete({ failed: true, error, source: 'context.fail' });
    },
  };
}

module.exports = { createContext, logStreamName };
