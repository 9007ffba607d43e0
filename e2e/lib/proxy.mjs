// A TCP relay between the browser and the server under test, so a test can
// take a page's network away: `cut()` drops every connection it carries and
// refuses new ones (accepted, then closed at once, as a dead path looks to
// the page) until `heal()`. The server sees the sessions end, as it would on
// a real outage.
import net from "node:net";

export class TcpProxy {
  /** @param {number} targetPort the server's port on 127.0.0.1 */
  constructor(targetPort) {
    this.targetPort = targetPort;
    this.refusing = false;
    /** @type {Set<net.Socket>} */
    this.sockets = new Set();
    this.server = null;
    /** Connections relayed so far. */
    this.relayed = 0;
  }

  /** Listens on a free loopback port; sets `port` and `baseUrl`. */
  async start() {
    this.server = net.createServer((client) => this._accept(client));
    await new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(0, "127.0.0.1", resolve);
    });
    this.port = this.server.address().port;
    this.baseUrl = `http://127.0.0.1:${this.port}`;
    return this;
  }

  _accept(client) {
    client.on("error", () => {});
    if (this.refusing) {
      client.destroy();
      return;
    }
    const upstream = net.connect(this.targetPort, "127.0.0.1");
    upstream.on("error", () => {});
    this.relayed++;
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on("close", () => {
        this.sockets.delete(s);
        // One side gone: the other goes too.
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /** Drops every relayed connection and refuses new ones until `heal()`. */
  cut() {
    this.refusing = true;
    for (const s of [...this.sockets]) s.destroy();
  }

  /** Relays new connections again. */
  heal() {
    this.refusing = false;
  }

  async stop() {
    this.cut();
    if (this.server) await new Promise((r) => this.server.close(() => r()));
  }
}

/** Starts a relay to `targetPort`. */
export async function startProxy(targetPort) {
  return new TcpProxy(targetPort).start();
}
