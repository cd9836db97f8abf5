// Test function of the redis transport tests: after an optional ?sleep=MS it returns the
// pid of the worker that ran it, the request's ?tag and the request id, so that a test can tell
// which deflector served which request.
exports.handler = async (event, context) => {
  const query = event.queryStringParameters || {};
  const sleep = Number(query.sleep || 0);
  if (sleep > 0) {
    await new Promise((resolve) => setTimeout(resolve, sleep));
  }
  return {
    statusCode: 200,
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ pid: process.pid, tag: query.tag || null, requestId: context.awsRequestId }),
  };
};
