// The field names of the DSM's well-known structures (players and users), loaded from the
// gateway at /dsm/schema.json, which serves store/schema.json: the single source that Go
// (store.Schema) reads too. No field name is written out by hand in the browser code.

/** SCHEMA_PATH is where the gateway serves the schema. */
export const SCHEMA_PATH = '/dsm/schema.json';

/**
 * Schema wraps the parsed schema.json with the address helpers of store/schema.go.
 * Its `players` and `users` members are the JSON sections as they are.
 */
export class Schema {
  constructor(json) {
    if (!json || !json.players || !json.users || !json.players.fields || !json.users.fields) {
      throw new Error('schema: missing players or users section');
    }
    this.json = json;
    this.players = json.players;
    this.users = json.users;
    /** P holds the player field names, e.g. P.playerState === "player_state". */
    this.P = Object.freeze({ ...json.players.fields });
    /** U holds the user field names. */
    this.U = Object.freeze({ ...json.users.fields });
    /** C holds the participant field names of a conference object. */
    this.C = Object.freeze({ ...json.users.participantFields });
  }

  /** playerAddress returns "players/<client>/<media>". */
  playerAddress(client, media = 'audio') {
    return this.players.prefix + client + '/' + media;
  }

  /** parsePlayerAddress splits "players/<client>/<media>", or returns null. */
  parsePlayerAddress(addr) {
    if (!addr.startsWith(this.players.prefix)) return null;
    const rest = addr.slice(this.players.prefix.length);
    const i = rest.indexOf('/');
    if (i <= 0) return null;
    const client = rest.slice(0, i);
    const media = rest.slice(i + 1);
    if (media === '' || media.includes('/')) return null;
    return { client, media };
  }

  /** userAddress returns "users/<user>". */
  userAddress(user) {
    return this.users.prefix + user;
  }

  /** conferenceAddress returns "users/<user>/conf/<id>". */
  conferenceAddress(user, conf) {
    return this.users.prefix + user + '/' + this.users.confSegment + '/' + conf;
  }

  /** isIndex reports whether addr is one of the index objects. */
  isIndex(addr) {
    return addr === this.players.index || addr === this.users.index;
  }
}

/**
 * loadSchema fetches the schema from the gateway at base (a page URL or origin).
 * fetchImpl defaults to the global fetch.
 */
export async function loadSchema(base, fetchImpl = globalThis.fetch) {
  const url = new URL(SCHEMA_PATH, base);
  const res = await fetchImpl(url);
  if (!res.ok) throw new Error(`schema: GET ${url}: HTTP ${res.status}`);
  return new Schema(await res.json());
}
