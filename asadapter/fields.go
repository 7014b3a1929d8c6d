package asadapter

import "dsmgw/store"

// playerFields are the player object's field names, read once from store.Schema.
type playerFields struct {
	service, remote, conference, encoding string
	playerState, mgwState, mgwURL         string
	progress, sipStatus, sipReason        string
	caller, callID, dtmf, hold            string
}

func fieldsOf(s *store.Schema) playerFields {
	f := s.Players.Fields
	return playerFields{
		service: f.Service, remote: f.Remote, conference: f.Conference, encoding: f.Encoding,
		playerState: f.PlayerState, mgwState: f.MgwState, mgwURL: f.MgwURL,
		progress: f.Progress, sipStatus: f.SipStatus, sipReason: f.SipReason,
		caller: f.Caller, callID: f.CallID, dtmf: f.DTMF, hold: f.Hold,
	}
}

// The values of player_state and mgw_state (store/schema.json).
const (
	stateRinging      = "ringing"
	stateConnecting   = "connecting"
	stateConnected    = "connected"
	stateDisconnected = "disconnected"
	stateFailed       = "failed"
)

// Values written to the progress field for provisional responses.
const (
	progressTrying    = "trying"
	progressRinging   = "ringing"
	progressEarly     = "early-media"
	progressAnswering = "answering"
)

// Values written to the hold field when the far end holds the call.
const (
	holdRemote = "remote"
)
