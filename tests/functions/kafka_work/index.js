// Sleeps ?sleep= milliseconds and writes ?logs= console lines, then responds with the request id,
// the deflector's pid (the worker's parent) and when the invocation started and ended.
exports.handler = async (event, context) => {
  const query = event.queryStringParameters || {};
  const startedMs = Date.now();
  const lines = Number(query.logs || 0);
  for (let index = 0; index < lines; index++) {
    console.log(`line ${index} of ${context.awsRequestId}`);
  }
  const sleep = Number(query.sleep || 0);
  if (sleep) await new Promise((resolve) => setTimeout(resolve, sleep));
  return {
    statusCode: 200,
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      requestId: context.awsRequestId,
      deflectorPid: process.ppid,
      startedMs,
      endedMs: Date.now(),
    }),
  };
};
