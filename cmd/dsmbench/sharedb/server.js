// ShareDB 7 in memory (no persistence), served over WebSocket on a loopback port: the
// server half of the ShareDB comparison. It prints "PORT <n>" once it listens; bench.js
// starts it as its own process so its CPU is measured apart from the clients'.
'use strict';
const http = require('http');
const ShareDB = require('sharedb');
const WebSocket = require('ws');
const { Duplex } = require('stream');

// A WebSocket as the stream ShareDB's agent reads JSON messages from and writes them to.
function wsStream(ws) {
  const s = new Duplex({ objectMode: true });
  s._read = () => {};
  s._write = (msg, _enc, cb) => { if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg)); cb(); };
  ws.on('message', (data) => { try { s.push(JSON.parse(data)); } catch (e) { ws.close(1007, 'bad json'); } });
  ws.on('close', () => { s.push(null); s.emit('close'); s.emit('end'); s.end(); });
  s.on('error', () => ws.close());
  s.on('end', () => ws.close());
  return s;
}

const backend = new ShareDB();
const server = http.createServer();
const wss = new WebSocket.Server({ server, perMessageDeflate: false });
wss.on('connection', (ws) => backend.listen(wsStream(ws)));
server.listen(0, '127.0.0.1', () => console.log('PORT ' + server.address().port));
process.on('SIGTERM', () => process.exit(0));
