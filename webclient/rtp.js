// RTP packets (RFC 3550) for the media player: the sender side keeps sequence number,
// timestamp and SSRC; the parser checks a received packet's header and finds its payload.
// One binary WebSocket message to or from the media gateway is exactly one packet.

/** isRTCP tells RTCP from RTP as RFC 5761 section 4 does (second byte 192-223). */
export function isRTCP(b) {
  return b.length >= 2 && b[1] >= 192 && b[1] <= 223;
}

/**
 * RTPSender numbers the packets of one stream: a random SSRC, a random first sequence
 * number and timestamp (RFC 3550 5.1, so packets of an earlier stream cannot be mistaken
 * for this one), the marker bit on the first packet of a talkspurt.
 */
export class RTPSender {
  constructor(pt, { ssrc, seq, timestamp } = {}) {
    this.pt = pt;
    const r = new Uint32Array(3);
    globalThis.crypto.getRandomValues(r);
    this.ssrc = ssrc ?? r[0];
    this.seq = seq ?? r[1] & 0xffff;
    this.timestamp = timestamp ?? r[2];
    this.marker = true;
  }

  /** packet returns one RTP packet carrying payload; samples advances the timestamp. */
  packet(payload, samples) {
    const p = new Uint8Array(12 + payload.length);
    const v = new DataView(p.buffer);
    p[0] = 0x80; // version 2, no padding, no extension, no CSRC
    p[1] = (this.marker ? 0x80 : 0) | (this.pt & 0x7f);
    v.setUint16(2, this.seq);
    v.setUint32(4, this.timestamp >>> 0);
    v.setUint32(8, this.ssrc >>> 0);
    p.set(payload, 12);
    this.marker = false;
    this.seq = (this.seq + 1) & 0xffff;
    this.timestamp = (this.timestamp + samples) >>> 0;
    return p;
  }
}

/**
 * parseRTP checks a packet and returns {pt, marker, seq, timestamp, ssrc, payload} or
 * null when it is not a valid RTP version 2 packet (too short, bad version, CSRCs,
 * extension or padding that do not fit).
 */
export function parseRTP(b) {
  if (!(b instanceof Uint8Array)) b = new Uint8Array(b);
  if (b.length < 12 || b[0] >> 6 !== 2 || isRTCP(b)) return null;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const cc = b[0] & 0x0f;
  let off = 12 + 4 * cc;
  if (b[0] & 0x10) {
    if (b.length < off + 4) return null;
    off += 4 + 4 * v.getUint16(off + 2);
  }
  let end = b.length;
  if (b[0] & 0x20) {
    const pad = b[b.length - 1];
    if (pad === 0) return null;
    end -= pad;
  }
  if (off > end) return null;
  return {
    pt: b[1] & 0x7f,
    marker: (b[1] & 0x80) !== 0,
    seq: v.getUint16(2),
    timestamp: v.getUint32(4),
    ssrc: v.getUint32(8),
    payload: b.subarray(off, end),
  };
}
