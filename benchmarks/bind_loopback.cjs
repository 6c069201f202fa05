// Preloaded with `node -r` (benchmarks/peers.py): makes a TCP server that is started without a
// host (Portkey's gateway calls listen(port, undefined, cb)) listen on 127.0.0.1 instead of on
// all interfaces. The benchmarks keep every listener on loopback.
"use strict";
const net = require("net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const first = args[0];
  if (typeof first === "number" || (typeof first === "string" && /^\d+$/.test(first))) {
    if (args.length < 2 || args[1] === undefined || args[1] === null) {
      args[1] = "127.0.0.1";
    } else if (typeof args[1] === "function") {
      args.splice(1, 0, "127.0.0.1");
    }
  } else if (first && typeof first === "object" && first.port !== undefined && !first.host) {
    args[0] = { ...first, host: "127.0.0.1" };
  }
  return listen.apply(this, args);
};
