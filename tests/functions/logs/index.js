// Writes one console line per level, each tagged with ?tag=, with awaits in between.
exports.handler = async (event) => {
  const tag = (event.queryStringParameters || {}).tag || "none";
  console.log(`log ${tag}`);
  await new Promise((resolve) => setTimeout(resolve, 5));
  console.info(`info ${tag}`);
  console.warn(`warn ${tag}`);
  await new Promise((resolve) => setTimeout(resolve, 5));
  console.error(`error ${tag}\nsecond line ${tag}`);
  return { statusCode: 200, body: tag };
};
