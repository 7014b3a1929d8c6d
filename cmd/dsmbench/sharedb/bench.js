// bench.js drives ShareDB 7 (server.js, in memory) with dsmbench's workload (see the doc
// comment of cmd/dsmbench): C clients, D = C player documents of 8 string fields; client
// i subscribes to player document i mod D and to the hot document of its group of G
// clients (i/G); each op sets one random field of one of its two documents (at random) to
// a 32-byte value, one op outstanding per client (closed loop). It prints acknowledged
// ops/s, submit→ack and submit→receipt (by every other subscriber) percentiles, and the
// CPU per op of the server and of this load generator, measured in one window.
//
//   node bench.js -c 50 -duration 15 -warmup 3
'use strict';
const { spawn } = require('child_process');
const fs = require('fs');
const path = require('path');
const WebSocket = require('ws');
const ShareDB = require('sharedb/lib/client');

const opt = { c: 50, d: 0, g: 10, duration: 15, warmup: 3 };
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i].replace(/^-+/, '');
  if (!(k in opt)) { console.error('unknown flag ' + process.argv[i]); process.exit(2); }
  opt[k] = Number(process.argv[i + 1]);
}
if (!opt.d) opt.d = opt.c;
const FIELDS = 8;
const CLK_TCK = 100; // /proc/<pid>/stat ticks per second on Linux

// cpuOf returns the user+system CPU seconds of pid from /proc.
function cpuOf(pid) {
  const f = fs.readFileSync('/proc/' + pid + '/stat', 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) / CLK_TCK;
}
function selfCPU() { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; }

function pct(a, p) {
  if (a.length === 0) return NaN;
  return a[Math.min(a.length - 1, Math.floor(p * a.length))];
}
function summary(a) {
  a.sort((x, y) => x - y);
  const f = (v) => v.toFixed(3);
  return `p50 ${f(pct(a, 0.5))}  p90 ${f(pct(a, 0.9))}  p99 ${f(pct(a, 0.99))}  max ${f(a[a.length - 1])} ms  (n=${a.length})`;
}

async function main() {
  const srv = spawn(process.execPath, [path.join(__dirname, 'server.js')], { stdio: ['ignore', 'pipe', 'inherit'] });
  process.on('exit', () => srv.kill('SIGTERM'));
  const port = await new Promise((res, rej) => {
    srv.stdout.on('data', (b) => { const m = /PORT (\d+)/.exec(String(b)); if (m) res(Number(m[1])); });
    srv.on('exit', (code) => rej(new Error('server exited ' + code)));
  });
  const t0 = process.hrtime.bigint();
  const now = () => Number(process.hrtime.bigint() - t0) / 1e6; // ms since start
  let measuring = false, stopping = false;
  const ack = [], recv = [];
  let acked = 0;
  const sent = new Map(); // value → submit time (ms), for receipts

  const clients = [];
  for (let i = 0; i < opt.c; i++) {
    const ws = new WebSocket('ws://127.0.0.1:' + port, { perMessageDeflate: false });
    const conn = new ShareDB.Connection(ws);
    const docs = [conn.get('players', 'p' + (i % opt.d)), conn.get('hot', 'h' + Math.floor(i / opt.g))];
    for (const doc of docs) {
      await new Promise((res, rej) => doc.subscribe((err) => (err ? rej(err) : res())));
      if (!doc.type) {
        const data = {};
        for (let f = 0; f < FIELDS; f++) data['f' + f] = '';
        await new Promise((res) => doc.create(data, () => res())); // a concurrent create loses: fine
        if (!doc.type) await new Promise((res) => doc.fetch(() => res()));
      }
      doc.on('op', (_op, source) => {
        if (source || !measuring) return;
        for (const c of _op) {
          const t = sent.get(c.oi);
          if (t !== undefined) recv.push(now() - t);
        }
      });
    }
    clients.push({ i, docs, seq: 0 });
  }

  function loop(cl) {
    if (stopping) return;
    const doc = cl.docs[Math.random() < 0.5 ? 0 : 1];
    const f = 'f' + Math.floor(Math.random() * FIELDS);
    const value = (cl.i.toString(16).padStart(8, '0') + (++cl.seq).toString(16).padStart(8, '0') + '0'.repeat(16)).slice(0, 32);
    const t = now();
    if (measuring) sent.set(value, t);
    doc.submitOp([{ p: [f], od: doc.data[f], oi: value }], (err) => {
      if (err) { console.error('op refused:', err.message); process.exit(1); }
      if (measuring) { ack.push(now() - t); acked++; }
      setTimeout(() => sent.delete(value), 2000);
      loop(cl);
    });
  }
  clients.forEach(loop);
  await new Promise((res) => setTimeout(res, opt.warmup * 1000));
  const s0 = cpuOf(srv.pid), l0 = selfCPU(), w0 = now();
  measuring = true;
  await new Promise((res) => setTimeout(res, opt.duration * 1000));
  measuring = false;
  const s1 = cpuOf(srv.pid), l1 = selfCPU(), w1 = now();
  stopping = true;
  const secs = (w1 - w0) / 1000;
  const us = (cpu) => ((cpu * 1e6) / acked).toFixed(1);
  console.log(`== ShareDB ${require('sharedb/package.json').version} (in memory, no persistence): C=${opt.c} D=${opt.d} G=${opt.g}, closed loop, window ${secs.toFixed(1)}s after ${opt.warmup}s warmup`);
  console.log(`   acknowledged ops/s  ${Math.round(acked / secs)}`);
  console.log(`   submit→ack          ${summary(ack)}`);
  console.log(`   submit→receipt      ${summary(recv)}   (each other subscriber)`);
  console.log(`   server CPU  ${us(s1 - s0)} µs/op  (${Math.round(((s1 - s0) / secs) * 100)}% of one core)`);
  console.log(`   tool CPU    ${us(l1 - l0)} µs/op  (${Math.round(((l1 - l0) / secs) * 100)}% of one core)`);
  srv.kill('SIGTERM');
  process.exit(0);
}
main().catch((e) => { console.error(e); process.exit(1); });
