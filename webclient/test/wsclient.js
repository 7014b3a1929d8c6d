// A tiny RFC 6455 WebSocket client over node's net module, with the browser's WebSocket
// interface (onopen, onmessage, onclose, onerror, send, close, readyState, binaryType),
// so that dsm.js runs unchanged under node 20, which has no global WebSocket. It masks
// every frame, sends text and binary frames, reassembles fragments, answers pings and
// closes. terminate() drops the TCP connection as a network failure would.

import net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export class WebSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;

  constructor(url) {
    const u = new URL(url);
    if (u.protocol !== 'ws:') throw new Error(`wsclient: only ws: URLs (${url})`);
    this.url = url;
    this.readyState = WebSocket.CONNECTING;
    this.binaryType = 'arraybuffer';
    this.onopen = this.onmessage = this.onclose = this.onerror = null;
    this.buf = Buffer.alloc(0);
    this.frags = [];
    this.fragOp = 0;
    this.closeSent = false;
    this.closeFired = false;
    this.key = randomBytes(16).toString('base64');
    this.sock = net.connect({ host: u.hostname, port: Number(u.port || 80) });
    this.sock.setNoDelay(true);
    this.sock.on('connect', () => {
      const path = u.pathname + u.search;
      this.sock.write(
        `GET ${path} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${this.key}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://${u.host}\r\n\r\n`,
      );
    });
    this.handshaken = false;
    this.sock.on('data', (d) => this.data(d));
    this.sock.on('error', (err) => {
      this.fire('onerror', { type: 'error', error: err });
    });
    this.sock.on('close', () => this.finish(1006, ''));
  }

  data(d) {
    this.buf = Buffer.concat([this.buf, d]);
    if (!this.handshaken) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = this.buf.subarray(0, end).toString('latin1');
      this.buf = this.buf.subarray(end + 4);
      const want = createHash('sha1').update(this.key + GUID).digest('base64');
      const status = head.split('\r\n')[0];
      const accept = /\r\nsec-websocket-accept:\s*(\S+)/i.exec(head);
      if (!/^HTTP\/1\.1 101/.test(status) || !accept || accept[1] !== want) {
        this.fire('onerror', { type: 'error', error: new Error(`wsclient: handshake refused: ${status}`) });
        this.sock.destroy();
        return;
      }
      this.handshaken = true;
      this.readyState = WebSocket.OPEN;
      this.fire('onopen', { type: 'open' });
    }
    this.frames();
  }

  frames() {
    for (;;) {
      const b = this.buf;
      if (b.length < 2) return;
      const fin = (b[0] & 0x80) !== 0;
      const op = b[0] & 0x0f;
      let len = b[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        len = Number(b.readBigUInt64BE(2));
        off = 10;
      }
      if (b[1] & 0x80) off += 4; // servers must not mask, but tolerate it
      if (b.length < off + len) return;
      let payload = Buffer.from(b.subarray(off, off + len));
      if (b[1] & 0x80) {
        const mask = b.subarray(off - 4, off);
        for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i & 3];
      }
      this.buf = b.subarray(off + len);
      this.frame(fin, op, payload);
      if (this.readyState === WebSocket.CLOSED) return;
    }
  }

  frame(fin, op, payload) {
    if (op === 0x9) return this.write(0xa, payload); // ping → pong
    if (op === 0xa) return;
    if (op === 0x8) {
      const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
      const reason = payload.length > 2 ? payload.subarray(2).toString('utf8') : '';
      if (!this.closeSent) this.write(0x8, payload.subarray(0, 2));
      this.closeSent = true;
      this.sock.end();
      this.finish(code, reason);
      return;
    }
    if (op !== 0) {
      this.fragOp = op;
      this.frags = [];
    }
    this.frags.push(payload);
    if (!fin) return;
    const all = Buffer.concat(this.frags);
    this.frags = [];
    if (this.readyState !== WebSocket.OPEN) return;
    const data = this.fragOp === 0x1 ? all.toString('utf8') : all.buffer.slice(all.byteOffset, all.byteOffset + all.length);
    this.fire('onmessage', { type: 'message', data });
  }

  send(data) {
    if (this.readyState !== WebSocket.OPEN) throw new Error('wsclient: not open');
    if (typeof data === 'string') return this.write(0x1, Buffer.from(data, 'utf8'));
    if (data instanceof ArrayBuffer) return this.write(0x2, Buffer.from(data));
    return this.write(0x2, Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  }

  write(op, payload) {
    const len = payload.length;
    let head;
    if (len < 126) {
      head = Buffer.alloc(6);
      head[1] = 0x80 | len;
    } else if (len < 65536) {
      head = Buffer.alloc(8);
      head[1] = 0x80 | 126;
      head.writeUInt16BE(len, 2);
    } else {
      head = Buffer.alloc(14);
      head[1] = 0x80 | 127;
      head.writeBigUInt64BE(BigInt(len), 2);
    }
    head[0] = 0x80 | op;
    const mask = randomBytes(4);
    mask.copy(head, head.length - 4);
    const body = Buffer.alloc(len);
    for (let i = 0; i < len; i++) body[i] = payload[i] ^ mask[i & 3];
    this.sock.write(Buffer.concat([head, body]));
  }

  close(code = 1000, reason = '') {
    if (this.readyState >= WebSocket.CLOSING) return;
    if (this.readyState === WebSocket.CONNECTING) {
      this.terminate();
      return;
    }
    this.readyState = WebSocket.CLOSING;
    const r = Buffer.from(reason, 'utf8');
    const p = Buffer.alloc(2 + r.length);
    p.writeUInt16BE(code, 0);
    r.copy(p, 2);
    this.closeSent = true;
    this.write(0x8, p);
    // The server answers with its close frame; end the TCP side if it does not within 1 s.
    setTimeout(() => this.sock.destroy(), 1000).unref();
  }

  /** terminate drops the TCP connection without a close handshake. */
  terminate() {
    this.sock.destroy();
    this.finish(1006, 'terminated');
  }

  finish(code, reason) {
    this.readyState = WebSocket.CLOSED;
    if (this.closeFired) return;
    this.closeFired = true;
    this.fire('onclose', { type: 'close', code, reason, wasClean: code !== 1006 });
  }

  fire(name, ev) {
    const fn = this[name];
    if (fn) fn.call(this, ev);
  }
}
