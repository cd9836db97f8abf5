// Test function for the RabbitMQ transport tests.
//
// Query parameters: "sleep" waits that many milliseconds before answering, and "tag" is echoed
// back. When RUN_LOG is set, every run appends one JSON line (tag, request id, pids) to that
// file, so a test can tell which invocations ran and in which deflector.
const fs = require("fs");

exports.handler = async (event, context) => {
  const query = event.queryStringParameters || {};
  const run = { tag: query.tag || "", requestId: context.awsRequestId, pid: process.pid, deflectorPid: process.ppid };
  if (process.env.RUN_LOG) {
    fs.appendFileSync(process.env.RUN_LOG, JSON.stringify(run) + "\n");
  }
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
