// Conformance scenario "broken": loading the module fails, so the worker must report it at readiness.
throw new Error("boothby conformance: broken on purpose");
