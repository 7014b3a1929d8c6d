// G.711 mu-law (PCMU) and A-law (PCMA) codecs for 16-bit linear PCM (ITU-T G.711),
// with tables computed once at load: a 256-entry decode table per law and a 65536-entry
// encode table indexed by the sample (64 KiB per law buys an exact, branch-free encoder).
// A Go test compares both laws with zaf/g711 on every code and every sample.

// The encoders follow the ITU-T G.191 reference (STL ulaw_compress / alaw_compress):
// negative samples by one's complement, mu-law on 14 bits with a bias of 33, A-law on 13.
function ulawEncodeSample(x) {
  let abs = x < 0 ? (~x >> 2) + 33 : (x >> 2) + 33;
  if (abs > 0x1fff) abs = 0x1fff;
  let seg = 1;
  for (let i = abs >> 6; i !== 0; i >>= 1) seg++;
  const low = 0x0f - ((abs >> seg) & 0x0f);
  const out = ((8 - seg) << 4) | low;
  return x >= 0 ? out | 0x80 : out;
}

function ulawDecodeByte(u) {
  u = ~u & 0xff;
  const sign = u & 0x80;
  const exp = (u >> 4) & 0x07;
  const mant = u & 0x0f;
  let s = ((mant << 3) + 0x84) << exp;
  s -= 0x84;
  return sign ? -s : s;
}

function alawEncodeSample(x) {
  let ix = x < 0 ? ~x >> 4 : x >> 4;
  if (ix > 15) {
    let exp = 1;
    while (ix > 16 + 15) {
      ix >>= 1;
      exp++;
    }
    ix = ix - 16 + (exp << 4);
  }
  if (x >= 0) ix |= 0x80;
  return (ix ^ 0x55) & 0xff;
}

function alawDecodeByte(a) {
  a ^= 0x55;
  let t = (a & 0x0f) << 4;
  const seg = (a & 0x70) >> 4;
  if (seg === 0) t += 8;
  else if (seg === 1) t += 0x108;
  else t = (t + 0x108) << (seg - 1);
  return a & 0x80 ? t : -t;
}

function buildTables() {
  const ulawDec = new Int16Array(256);
  const alawDec = new Int16Array(256);
  for (let i = 0; i < 256; i++) {
    ulawDec[i] = ulawDecodeByte(i);
    alawDec[i] = alawDecodeByte(i);
  }
  const ulawEnc = new Uint8Array(65536);
  const alawEnc = new Uint8Array(65536);
  for (let i = 0; i < 65536; i++) {
    const s = i - 32768;
    ulawEnc[i] = ulawEncodeSample(s);
    alawEnc[i] = alawEncodeSample(s);
  }
  return { ulawDec, alawDec, ulawEnc, alawEnc };
}

const T = buildTables();

/** The codecs by SDP encoding name, with their static RTP payload types (RFC 3551). */
export const CODECS = {
  PCMU: { pt: 0, enc: T.ulawEnc, dec: T.ulawDec },
  PCMA: { pt: 8, enc: T.alawEnc, dec: T.alawDec },
};

/** encode turns Int16 samples into G.711 bytes (out may be given to avoid allocating). */
export function encode(name, pcm, out = new Uint8Array(pcm.length)) {
  const enc = codec(name).enc;
  for (let i = 0; i < pcm.length; i++) out[i] = enc[pcm[i] + 32768];
  return out;
}

/** decode turns G.711 bytes into Int16 samples. */
export function decode(name, bytes, out = new Int16Array(bytes.length)) {
  const dec = codec(name).dec;
  for (let i = 0; i < bytes.length; i++) out[i] = dec[bytes[i]];
  return out;
}

/** codecByPT returns the encoding name of a static payload type, or null. */
export function codecByPT(pt) {
  for (const [name, c] of Object.entries(CODECS)) if (c.pt === pt) return name;
  return null;
}

function codec(name) {
  const c = CODECS[name];
  if (!c) throw new Error(`g711: unknown encoding ${name} (want PCMU or PCMA)`);
  return c;
}
