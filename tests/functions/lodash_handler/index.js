// A plain Lambda handler that uses lodash, unchanged from how it would run on AWS.
const _ = require("lodash");

exports.handler = async (event) => {
  const words = _.words(event.body || "");
  return {
    statusCode: 200,
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ counts: _.countBy(words.map(_.toLower)), longest: _.maxBy(words, "length") || null }),
  };
};
