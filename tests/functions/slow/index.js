// Sleeps ?ms= milliseconds, then responds with the request id and the worker pid.
exports.handler = async (event, context) => {
  const ms = Number((event.queryStringParameters || {}).ms || 100);
  await new Promise((resolve) => setTimeout(resolve, ms));
  return { statusCode: 200, body: JSON.stringify({ requestId: context.awsRequestId, pid: process.pid }) };
};
