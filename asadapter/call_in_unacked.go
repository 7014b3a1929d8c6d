package asadapter

import "context"

// The window between an incoming call's confirmed save and its 200 (call_in.go,
// answerIn): the dialog record says confirmed (saved just before the 200 goes out, so a
// survivor never answers a caller that did get the 200), but an instance lost between the
// save and the 200 leaves a caller that never had the answer, still waiting on its INVITE
// transaction. The record therefore keeps the INVITE's Via headers, source and transport
// until the ACK came (acked), and a survivor that finds them (unacked):
//
//   - re-INVITEs as for any confirmed call: a caller that had the 200 answers 2xx, and
//     the call goes on (the Vias are dropped with the new media, call_resume.go moved);
//   - if that re-INVITE is refused (481 from a caller that has no such dialog, or any
//     other failure), answers the INVITE 480 along the stored Vias, as for a call still
//     ringing (takeover.go refuseRinging), besides the BYE a refusal gets, and the player
//     shows the same as for a ringing call: 480, gateway instance lost. If the 200 did
//     go out after all, the 480 is a stray response the previous hop drops.

// acked drops the INVITE's Vias from the dialog record once the caller acknowledged our
// 200: from then on nobody may answer that INVITE again.
func (c *call) acked(ctx context.Context) {
	c.mu.Lock()
	had := len(c.d.InviteVias) > 0
	c.d.InviteVias, c.d.InviteSource, c.d.InviteTransport = nil, "", ""
	d := c.d
	c.mu.Unlock()
	if !had {
		return
	}
	if err := c.a.saveDialog(ctx, &d); err != nil {
		// The record keeps them until the next save; a survivor that finds them only
		// re-INVITEs, which the caller answers.
		c.log.Warn("save dialog failed", "err", err)
	}
}

// unacked returns the dialog when its record still holds the INVITE's Vias: the caller's
// ACK was never seen, so the caller may never have had our 200.
func (c *call) unacked() (dialog, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.d, c.dir == DirIn && len(c.d.InviteVias) > 0
}
