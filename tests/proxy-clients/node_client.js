// toxiproxy-node-client (npm) against a running firedrill proxy.
// Usage: node node_client.js API_URL   (e.g. http://127.0.0.1:8474)
// Exits non-zero on the first step that fails.
"use strict";
const assert = require("node:assert/strict");
const net = require("node:net");
const { Toxiproxy } = require("toxiproxy-node-client");

function echoUpstream() {
  return new Promise((resolve) => {
    const srv = net.createServer((c) => c.pipe(c));
    srv.listen(0, "127.0.0.1", () => resolve({ srv, addr: `127.0.0.1:${srv.address().port}` }));
  });
}

function rtt(listen, payload = "ping") {
  const [host, port] = listen.split(":");
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const c = net.connect(Number(port), host, () => c.write(payload));
    let got = "";
    c.on("data", (d) => {
      got += d;
      if (got.length >= payload.length) {
        c.destroy();
        assert.equal(got, payload);
        resolve(Number(process.hrtime.bigint() - start) / 1e9);
      }
    });
    c.on("error", reject);
    c.setTimeout(5000, () => reject(new Error("timeout")));
  });
}

function refused(listen) {
  const [host, port] = listen.split(":");
  return new Promise((resolve) => {
    const c = net.connect(Number(port), host, () => { c.destroy(); resolve(false); });
    c.on("error", () => resolve(true));
  });
}

const step = (s) => console.log(`node: ${s}`);

async function main() {
  const api = process.argv[2];
  const { srv, addr } = await echoUpstream();
  const tp = new Toxiproxy(api);

  step("version");
  const version = await tp.getVersion();
  assert.ok(version.length > 0);
  for (const p of Object.values(await tp.getAll())) await p.remove();

  step("create proxy");
  let proxy = await tp.createProxy({ name: "node_echo", listen: "127.0.0.1:0", upstream: addr });
  assert.equal(proxy.enabled, true);
  assert.ok(!proxy.listen.endsWith(":0"), proxy.listen);
  assert.ok(await rtt(proxy.listen) < 0.1);

  step("add latency toxic");
  const toxic = await proxy.addToxic({
    type: "latency", name: "lag", stream: "downstream", toxicity: 1, attributes: { latency: 200, jitter: 0 },
  });
  assert.equal(toxic.name, "lag");
  assert.deepEqual(toxic.attributes, { latency: 200, jitter: 0 });
  assert.ok(await rtt(proxy.listen) >= 0.2);

  step("update toxic");
  const updated = await toxic.update({ ...toxic.toJson(), attributes: { latency: 50, jitter: 0 } });
  assert.equal(updated.attributes.latency, 50);
  const fetched = await proxy.getToxic("lag");
  assert.equal(fetched.attributes.latency, 50);

  step("remove toxic");
  await toxic.remove();
  assert.ok(await rtt(proxy.listen) < 0.1);

  step("disable and enable");
  proxy = await proxy.update({ ...proxy.toJson(), enabled: false });
  assert.equal(proxy.enabled, false);
  assert.ok(await refused(proxy.listen));
  proxy = await proxy.update({ ...proxy.toJson(), enabled: true });
  assert.equal(proxy.enabled, true);
  assert.ok(await rtt(proxy.listen) < 0.1);

  step("populate, get and reset");
  const populated = await tp.populate([{ name: "node_other", listen: "127.0.0.1:0", upstream: addr, enabled: true }]);
  assert.ok(populated.node_other);
  assert.equal((await tp.get("node_other")).upstream, addr);
  await proxy.addToxic({ type: "timeout", name: "hole", stream: "upstream", toxicity: 1, attributes: { timeout: 0 } });
  await proxy.update({ ...proxy.toJson(), enabled: false });
  await tp.reset();
  assert.equal((await tp.get("node_echo")).enabled, true);

  step("errors are reported");
  await assert.rejects(tp.createProxy({ name: "node_echo", listen: "127.0.0.1:0", upstream: addr }), /409/);
  await assert.rejects(tp.get("no_such_proxy"), /404/);

  step("remove proxies");
  for (const p of Object.values(await tp.getAll())) await p.remove();
  assert.deepEqual(Object.keys(await tp.getAll()), []);
  srv.close();
  console.log("node client: all steps passed");
}

main().catch((e) => { console.error(e); process.exit(1); });
