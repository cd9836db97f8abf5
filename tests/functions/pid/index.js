// Returns the worker's pid, after ?sleep= milliseconds.
exports.handler = async (event) => {
  const sleep = Number((event.queryStringParameters || {}).sleep || 0);
  if (sleep) await new Promise((resolve) => setTimeout(resolve, sleep));
  return { statusCode: 200, headers: { "content-type": "text/plain" }, body: String(process.pid) };
};
