// Conformance scenario "logs": one console record per level, tagged with ?tag=, yielding in between.
const pause = () => new Promise((resolve) => setTimeout(resolve, 5));

exports.handler = async (event) => {
  const tag = (event.queryStringParameters || {}).tag;
  console.debug(`debug ${tag}`);
  await pause();
  console.info(`info ${tag}`);
  await pause();
  console.warn(`warn ${tag}`);
  await pause();
  console.error(`error ${tag}\nsecond line ${tag}`);
  return { statusCode: 200, body: tag };
};
