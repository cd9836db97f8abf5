// Logs tagged lines around awaits while waiting until ?together= invocations run at once in this
// worker (or 5 s pass), so that concurrent invocations interleave their console calls.
let running = 0;
let peak = 0;

exports.handler = async (event, context) => {
  const query = event.queryStringParameters || {};
  const together = Number(query.together || 1);
  running += 1;
  peak = Math.max(peak, running);
  const giveUp = Date.now() + 5000;
  let step = 0;
  while (step < 5 || (peak < together && Date.now() < giveUp)) {
    console.log(`${query.tag} step ${step}`);
    step += 1;
    await new Promise((resolve) => setTimeout(resolve, 20 + Math.random() * 30));
  }
  setTimeout(() => console.log(`${query.tag} timer`), 1);
  await new Promise((resolve) => setTimeout(resolve, 20));
  running -= 1;
  return {
    statusCode: 200,
    body: JSON.stringify({ tag: query.tag, pid: process.pid, peak, steps: step, remaining: context.getRemainingTimeInMillis() }),
  };
};
