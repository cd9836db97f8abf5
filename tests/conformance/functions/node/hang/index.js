// Conformance scenario "hang": the returned promise never settles.
exports.handler = () => new Promise(() => {});
