package asadapter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"dsmgw/asadapter/sdp"
)

// dialog is a call's SIP dialog state (RFC 3261 section 12) plus what another instance
// needs to end the call: it is stored in Redis as JSON on every change.
type dialog struct {
	Player     string      `json:"player"`
	Owner      string      `json:"owner"`
	Dir        Direction   `json:"dir"`
	State      DialogState `json:"state"`
	CallID     string      `json:"call_id"`
	LocalTag   string      `json:"ltag"`
	RemoteTag  string      `json:"rtag,omitempty"`
	LocalURI   string      `json:"luri"`  // From (ours) without tag
	RemoteURI  string      `json:"ruri"`  // To (theirs) without tag
	LocalCSeq  uint32      `json:"lcseq"` // last CSeq we used
	RemoteCSeq uint32      `json:"rcseq"` // last CSeq the peer used
	RouteSet   []string    `json:"routes,omitempty"`
	Target     string      `json:"target"` // remote target (Contact) or request URI before a dialog
	Term       string      `json:"term,omitempty"`
	// InviteVia and InviteCSeq let another instance CANCEL our INVITE before an answer.
	InviteVia  string     `json:"invite_via,omitempty"`
	InviteCSeq uint32     `json:"invite_cseq,omitempty"`
	InviteURI  string     `json:"invite_uri,omitempty"`
	Origin     sdp.Origin `json:"origin"`
	// Session timer (RFC 4028): interval in seconds and who refreshes ("uac"/"uas").
	SessionExpires int    `json:"se,omitempty"`
	Refresher      string `json:"refresher,omitempty"`

	listed bool // already in the calls set (not stored)
}

// saveDialog stores d (on every change of it, under the lock that guards it or on a copy).
func (a *Adapter) saveDialog(ctx context.Context, d *dialog) error {
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("asadapter: encode dialog of %s: %w", d.Player, err)
	}
	// The first save also lists the player in the set a takeover scans; later saves
	// (CSeq, state) rewrite only the record, one command.
	if d.listed {
		err = a.st.Redis().Set(ctx, a.keys.dialog(d.Player), b, 0).Err()
	} else {
		_, err = a.st.Redis().Pipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, a.keys.dialog(d.Player), b, 0)
			p.SAdd(ctx, a.keys.calls(), d.Player)
			return nil
		})
	}
	if err != nil {
		return fmt.Errorf("asadapter: save dialog of %s: %w", d.Player, err)
	}
	d.listed = true
	return nil
}

// loadDialog reads the dialog record of player; ErrNoDialog when there is none.
func (a *Adapter) loadDialog(ctx context.Context, player string) (*dialog, error) {
	b, err := a.st.Redis().Get(ctx, a.keys.dialog(player)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("asadapter: dialog of %s: %w", player, ErrNoDialog)
	}
	if err != nil {
		return nil, fmt.Errorf("asadapter: load dialog of %s: %w", player, err)
	}
	var d dialog
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("asadapter: decode dialog of %s: %w", player, err)
	}
	d.listed = true
	return &d, nil
}

// deleteDialog drops the dialog record of player and its entry in the calls set.
func (a *Adapter) deleteDialog(ctx context.Context, player string) {
	_, err := a.st.Redis().Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, a.keys.dialog(player))
		p.SRem(ctx, a.keys.calls(), player)
		return nil
	})
	if err != nil {
		a.log.Warn("delete dialog failed; the rescan retries", "player", player, "err", err)
	}
}
