// Tries to break one isolation guard, chosen by ?try=, and reports what happened as JSON.
const fs = require("fs");
const net = require("net");
const childProcess = require("child_process");

function attempt(action) {
  try {
    return { ok: true, value: action() };
  } catch (error) {
    return { ok: false, code: error.code || error.name, message: String(error.message) };
  }
}

exports.handler = async (event) => {
  const query = event.queryStringParameters || {};
  switch (query.try) {
    case "read":
      return attempt(() => fs.readFileSync(query.path, "utf8"));
    case "write":
      return attempt(() => fs.writeFileSync(query.path, "written by a function"));
    case "write-tmp":
      return attempt(() => {
        const file = require("path").join(process.env.TMPDIR, "scratch.txt");
        fs.writeFileSync(file, "scratch");
        return fs.readFileSync(file, "utf8");
      });
    case "env":
      return { ok: true, value: process.env };
    case "spawn":
      return attempt(() => String(childProcess.execFileSync("/bin/echo", ["escaped"])));
    case "fork-bomb":
      return attempt(() => {
        for (let i = 0; i < 1000; i += 1) childProcess.spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"]);
        return "spawned";
      });
    case "signal":
      return attempt(() => process.kill(Number(query.pid), "SIGTERM"));
    case "whoami":
      return { ok: true, value: { uid: process.getuid(), gid: process.getgid(), pid: process.pid } };
    case "connect":
      return new Promise((resolve) => {
        const socket = net.connect(query.path);
        socket.on("connect", () => { socket.destroy(); resolve({ ok: true, value: "connected" }); });
        socket.on("error", (error) => resolve({ ok: false, code: error.code, message: error.message }));
      });
    case "allocate": {
      const kept = [];
      for (;;) {
        kept.push(Buffer.alloc(16 * 1024 * 1024, 1));
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
    case "loop":
      for (;;) {}
    default:
      return { ok: true, value: "nothing tried" };
  }
};
