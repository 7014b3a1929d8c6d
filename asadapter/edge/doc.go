/*
Package edge is the SIP edge of the gateway: it decides, for every message the SIP
listeners read and before the SIP stack parses it or creates a transaction for it, whether
the message gets in. An IMS application server trusts only its CSCFs (RFC 3325: identity
headers are honoured only inside the trust domain), and a public SIP port is scanned and
flooded within minutes of going up; the edge is where both are handled, cheaply.

# The rule

A message from the trust domain (Config.Trusted: addresses, prefixes or host names of the
CSCFs; the adapter adds its outbound proxy's host; or, over TLS with TrustedNames, a client
certificate naming one of them) passes untouched, and its source has no bounds: in IMS
everything arrives from the CSCF.

From anywhere else:

  - P-Asserted-Identity and P-Asserted-Service are removed before anything reads them.
  - A request in a dialog of ours (its Call-ID and tags match one, asked through Dialogs)
    passes: from the dialog's next hop without further checks, from elsewhere within the
    source's rate. One matching nothing is answered 481.
  - An out-of-dialog request is answered 403, or, where the operator gave direct peers
    credentials (Config.Peers), challenged with 401 and let through once answered.
  - Every request counts against its source's buckets: above SourceRate per second it is
    answered 503 with Retry-After, above SourceDropRate it is dropped without an answer.
    Responses count too, and are never answered.
  - Answers are stateless (answer.go): one response per request, no transaction, no
    retransmission, nothing kept; so a spoofed source draws at most one response per
    request it did not send, and a scan or a flood leaves memory where it was.
  - A datagram the edge cannot read is dropped; a stream it cannot frame is closed.

Call control adds its own refusals through Refused (a call for nobody registered here, for
a user whose registration is not live, for a domain not ours), and bounds what an untrusted
source holds at once through Enter (requests in progress) and OpenDialog (calls); the
listener wrapper bounds its connections through OpenConn.

Refusals are counted per reason (a fixed label set) and logged as one summary line every
Config.Summary, with the sources refused most, never as a line per request.

# Widening the trust domain

To let more peers in, from the safest to the widest:

  - Add the addresses, prefixes or names of other CSCFs to Trusted (SIP_TRUSTED_PEERS), or
    their certificate names to TrustedNames (SIP_TRUSTED_NAMES, with SIP_TLS_CLIENT_CAS).
    They are then believed about identities: only peers that assert identities (RFC 3325)
    belong there.
  - Give direct peers digest credentials (Peers, SIP_PEER_CREDENTIALS): they call in after
    a challenge, stay outside the trust domain (no asserted identity, per-source bounds),
    and the caller id shown is their From.
  - Trusting a whole network (SIP_TRUSTED_PEERS=0.0.0.0/0) turns the edge off: anyone there
    may assert any identity and flood without bounds. It is for closed test networks only.
*/
package edge
