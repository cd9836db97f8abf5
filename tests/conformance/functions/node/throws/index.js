// Conformance scenario "throws": the handler fails with a known message.
exports.handler = async () => {
  throw new Error("boothby conformance: thrown on purpose");
};
