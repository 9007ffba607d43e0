// Starts the server under test on a free loopback port with a fresh store,
// and can SIGKILL and restart it on the same port and store.
//
// Which server:
// - `E2E_SERVER_CMD`: a command template run with `sh -c`; `{port}`, `{addr}`,
//   `{db}` and `{web}` (the absolute path of web/) are replaced. The server
//   must serve the demo at `/` itself.
// - otherwise the server binary `target/$E2E_PROFILE/adapter-tokio --addr
//   127.0.0.1:PORT --db FILE --static WEB_DIR` (no authentication configured:
//   anonymous access; `$CARGO_TARGET_DIR` instead of `target/` when set). A
//   missing binary is an error, never a fallback.
//
// A test that needs more flags (such as `--history 'hist:*=100'`) passes them
// to `startServer(extraArgs)`: they are appended to either command.
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const webDir = path.join(repoRoot, "web");
/** Cargo profile of the real binary: `release` unless `E2E_PROFILE` says `debug`. */
const realProfile = process.env.E2E_PROFILE || "release";
/** Cargo's target directory: `CARGO_TARGET_DIR` when set, else `target/`. */
const targetDir = process.env.CARGO_TARGET_DIR ? path.resolve(repoRoot, process.env.CARGO_TARGET_DIR) : path.join(repoRoot, "target");
export const realBinary = path.join(targetDir, realProfile, "adapter-tokio");

/** Which kind of server the tests run against: "command" or "real". */
export function serverKind() {
  return process.env.E2E_SERVER_CMD ? "command" : "real";
}

/** A free TCP port on the loopback interface. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

async function waitForPort(port, child, log, timeoutMs = 30000) {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`server exited early (${child.exitCode ?? child.signalCode}):\n${log()}`);
    }
    if (await canConnect(port)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`server did not listen on ${port} within ${timeoutMs} ms:\n${log()}`);
}

/**
 * A server under test. `baseUrl` stays the same across `kill()` + `start()`.
 */
export class ServerUnderTest {
  /**
   * @param {string[]} [extraArgs] more flags, appended to the real binary's
   * command or to `E2E_SERVER_CMD` (shell-quoted), such as `--jwt-secret`.
   */
  constructor(extraArgs = []) {
    this.extraArgs = extraArgs;
    this.kind = serverKind();
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "live-sync-e2e-"));
    this.db = path.join(this.dir, "sync.db");
    this.child = null;
    this.output = "";
  }

  /** Starts (or restarts) the server and waits until it accepts connections. */
  async start() {
    if (!this.port) {
      this.port = await freePort();
      this.baseUrl = `http://127.0.0.1:${this.port}`;
    }
    const addr = `127.0.0.1:${this.port}`;
    let cmd;
    let args;
    if (this.kind === "command") {
      cmd = "sh";
      const line = process.env.E2E_SERVER_CMD.replaceAll("{port}", String(this.port))
        .replaceAll("{addr}", addr)
        .replaceAll("{db}", this.db)
        .replaceAll("{web}", webDir);
      const extra = this.extraArgs.map(shellQuote).join(" ");
      args = ["-c", `exec ${line}${extra ? " " + extra : ""}`];
    } else {
      if (!fs.existsSync(realBinary)) {
        const build = realProfile === "release" ? "cargo build --release -p adapter-tokio" : "cargo test --workspace --no-run";
        throw new Error(`${realBinary} missing: ${build} (or run bash e2e/run.sh, which builds it)`);
      }
      cmd = realBinary;
      args = ["--addr", addr, "--db", this.db, "--static", webDir, ...this.extraArgs];
    }
    this.child = spawn(cmd, args, { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] });
    const keep = (b) => {
      this.output = (this.output + b.toString()).slice(-20000);
    };
    this.child.stdout.on("data", keep);
    this.child.stderr.on("data", keep);
    await waitForPort(this.port, this.child, () => this.output);
    return this;
  }

  /** SIGKILLs the server process (no graceful shutdown) and waits for its exit. */
  async kill() {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGKILL");
    await exited;
  }

  /** Sync HTTP call from the test itself (bypasses the browser). */
  async sync(op, body) {
    const res = await fetch(`${this.baseUrl}/_sync/${op}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const json = await res.json();
    if (res.status !== 200) throw new Error(`${op}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  }

  /** Every change of `scope`'s log, following pagination. */
  async allChanges(scope) {
    const changes = [];
    let cursor = 0;
    for (;;) {
      const page = await this.sync("pull", { scope, cursor, limit: 1000 });
      changes.push(...page.changes);
      cursor = page.next_cursor;
      if (!page.has_more) return changes;
    }
  }

  /** Stops everything and removes the store. */
  async stop() {
    await this.kill();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Quotes one argument for `sh -c`. */
function shellQuote(arg) {
  return `'${String(arg).replaceAll("'", `'\\''`)}'`;
}

/**
 * Starts a fresh server.
 * @param {string[]} [extraArgs] more flags for it (see `ServerUnderTest`)
 */
export async function startServer(extraArgs = []) {
  const s = new ServerUnderTest(extraArgs);
  await s.start();
  return s;
}
