// Logs tagged lines around awaits, so concurrent invocations in one worker interleave their console calls.
exports.handler = async (event, context) => {
  const tag = (event.queryStringParameters || {}).tag;
  const started = Date.now();
  for (let step = 0; step < 5; step += 1) {
    console.log(`${tag} step ${step}`);
    await new Promise((resolve) => setTimeout(resolve, 50 + Math.random() * 50));
  }
  setTimeout(() => console.log(`${tag} timer`), 1);
  await new Promise((resolve) => setTimeout(resolve, 20));
  return { statusCode: 200, body: JSON.stringify({
    tag, pid: process.pid, started, finished: Date.now(), remaining: context.getRemainingTimeInMillis(),
  }) };
};
