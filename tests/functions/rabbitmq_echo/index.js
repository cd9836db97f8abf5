// Test function of the rabbitmq transport tests. After an optional ?sleep=MS it returns the
// request's ?tag, the request id and the pids of the worker and of its deflector. Every run first
// writes "rabbitmq-echo started TAG" to standard error, which the deflector logs at once, so a
// test can tell which invocations ran, where, and that one has started.
exports.handler = async (event, context) => {
  const query = event.queryStringParameters || {};
  const run = { tag: query.tag || "", requestId: context.awsRequestId, pid: process.pid, deflectorPid: process.ppid };
  process.stderr.write(`rabbitmq-echo started ${run.tag}\n`);
  const sleep = Number(query.sleep || 0);
  if (sleep > 0) {
    await new Promise((resolve) => setTimeout(resolve, sleep));
  }
  return {
    statusCode: 200,
    headers: { "content-type": "application/json" },
    body: JSON.stringify(run),
  };
};
