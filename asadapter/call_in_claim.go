package asadapter

import (
	"context"
	"time"

	"github.com/emiago/sipgo/sip"
)

// The claim of an incoming call. A user's previous call may have ended (the far end's BYE
// arrived, the player already shows it over) while its owner still cleans up: it deletes
// the termination, writes the result, deletes the dialog record and only then releases
// the claim, and removes the call from its table after that. A new INVITE for the user
// in that moment is no call for a busy user, yet it was answered 486: a caller calling
// again right after hanging up lost the call, as did a phone calling a user whose
// registration had just moved (rolling restart) while the previous call was ending on
// the instance that held it before. Such an INVITE now waits for the claim; a user whose
// call is still up or ringing is busy at once.

// endingPoll is how often the claim is tried again while a call ends: a release is not
// announced, and a few Redis requests per waiting INVITE cost nothing.
const endingPoll = 20 * time.Millisecond

// claimIncoming claims player for an incoming INVITE, waiting while the claim belongs to a
// call that is ending, and then for that call to leave this instance's table. The wait is
// bounded by one lease (ClaimTTL): the holder releases the claim after a media gateway
// request and three Redis round trips, and if it dies meanwhile the claim expires within
// a lease; a caller that has seen 100 Trying waits that long without retransmitting
// (Timer B: 32 s). It returns our claim (whose lease counts from when it was sent,
// lease.go) and whether the player is ours.
func (a *Adapter) claimIncoming(ctx context.Context, tx sip.ServerTransaction, player string) (claimed, bool, error) {
	deadline := time.NewTimer(a.cfg.ClaimTTL)
	defer deadline.Stop()
	waited := false
	for {
		cl, ok, err := a.claim(ctx, player)
		if err != nil {
			return claimed{}, false, err
		}
		if ok {
			// Our own previous call released the claim and is leaving the table.
			if c := a.callFor(player); c != nil {
				select {
				case <-c.done:
				case <-deadline.C:
				case <-ctx.Done():
				}
			}
			return cl, true, nil
		}
		if !a.callEnding(ctx, player) {
			return claimed{}, false, nil
		}
		if !waited {
			waited = true
			a.met.claimWaits.Inc()
		}
		select {
		case <-ctx.Done():
			return claimed{}, false, ctx.Err()
		case <-tx.Done():
			return claimed{}, false, nil // the caller gave up
		case <-deadline.C:
			return claimed{}, false, nil
		case <-time.After(endingPoll):
		}
	}
}

// callEnding reports whether the claim of player is held by a call that is over and only
// being cleaned up: a call of ours that is finishing, or (its owner being another
// instance) a player object that shows no live or ringing call.
func (a *Adapter) callEnding(ctx context.Context, player string) bool {
	if c := a.callFor(player); c != nil {
		return c.finished.Load()
	}
	snap, err := a.st.Snapshot(ctx, player)
	if err != nil {
		return false
	}
	fl := snap.Fields
	return !isLive(fl[a.f.mgwState]) && fl[a.f.playerState] != stateRinging
}
