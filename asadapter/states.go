package asadapter

import "dsmgw/store"

// playerFields are the player object's field names, read once from store.Schema.
type playerFields struct {
	service, remote, conference, encoding string
	playerState, mgwState, mgwURL         string
	progress, sipStatus, sipReason        string
	caller, callID, dtmf, hold            string
	holdIntent                            string // the page's (call_hold.go)
	mediaQuality                          string // the media gateway's counters (call_quality.go)
	// Push-to-talk (call_ptt.go): the page's intent and the floor state we write.
	floor, floorState, floorTalker, floorReason, floorPosition, floorDuration string
	// claimGen is the generation of the claim of the call's owner (records.go).
	claimGen string
}

func fieldsOf(s *store.Schema) playerFields {
	f := s.Players.Fields
	return playerFields{
		service: f.Service, remote: f.Remote, conference: f.Conference, encoding: f.Encoding,
		playerState: f.PlayerState, mgwState: f.MgwState, mgwURL: f.MgwURL,
		progress: f.Progress, sipStatus: f.SipStatus, sipReason: f.SipReason,
		caller: f.Caller, callID: f.CallID, dtmf: f.DTMF, hold: f.Hold, holdIntent: f.HoldIntent,
		mediaQuality: f.MediaQuality,
		floor:        f.Floor, floorState: f.FloorState, floorTalker: f.FloorTalker, floorReason: f.FloorReason,
		floorPosition: f.FloorPosition, floorDuration: f.FloorDuration, claimGen: f.ClaimGen,
	}
}

// The values of player_state and mgw_state (store/schema.json): DSM field values, shared
// with the browser, hence plain strings.
const (
	stateRinging      = "ringing"
	stateConnecting   = "connecting"
	stateConnected    = "connected"
	stateDisconnected = "disconnected"
	stateFailed       = "failed"
)

// Values written to the progress field for provisional responses.
const (
	progressTrying  = "trying"
	progressRinging = "ringing"
	progressEarly   = "early-media"
)

// Values of the hold field: the far end holds the call (remote), or we do at the page's
// request (local, call_hold.go); and the page's hold_intent value asking for it.
const (
	holdRemote     = "remote"
	holdLocal      = "local"
	holdIntentHold = "hold"
)

// DialogState is the state of a call's SIP dialog (RFC 3261 section 12) as its dialog
// record in Redis shows it: a takeover sends BYE to a confirmed dialog and CANCEL to an
// outgoing one that is not.
type DialogState string

// The dialog states.
const (
	DialogCalling   DialogState = "calling"   // INVITE sent (or received), no dialog yet
	DialogEarly     DialogState = "early"     // provisional response with a tag
	DialogConfirmed DialogState = "confirmed" // 2xx sent or received
)

// Direction is who placed a call, as dialog records and the metrics' direction label
// show it.
type Direction string

// The call directions.
const (
	DirOut Direction = "out" // the browser called (we are the UAC)
	DirIn  Direction = "in"  // a SIP peer called the browser (we are the UAS)
)

// result is how a call ended: the label of asadapter_call_results_total and of the
// "call ended" log line.
type result string

// The call results.
const (
	resultLocalBye        result = "local_bye"              // the browser hung up
	resultFailed          result = "failed"                 // the browser wrote failed (or the media gateway ended the termination)
	resultRemoteBye       result = "remote_bye"             // the far end hung up
	resultRejected        result = "rejected"               // the far end refused our INVITE
	resultCancelled       result = "cancelled"              // the browser hung up before the answer
	resultNoAnswer        result = "no_answer"              // the browser did not answer an incoming call in time
	resultDeclined        result = "declined"               // the browser refused an incoming call
	resultCallerCancelled result = "caller_cancelled"       // the far end cancelled its INVITE
	resultNoAck           result = "no_ack"                 // our 200 was never acknowledged
	resultBadSDP          result = "bad_sdp"                // the answer had no usable media
	resultBusy            result = "busy"                   // this instance holds MaxCalls already
	resultDrained         result = "drained"                // HangupAll ended it
	resultSessionExpired  result = "session_expired"        // no session refresh came (RFC 4028)
	resultRefreshFailed   result = "session_refresh_failed" // our session refresh was refused
	resultMGWError        result = "mgw_error"              // the media gateway refused a termination
	resultError           result = "error"                  // our own failure (storage, a request we could not build)
	resultTakenOver       result = "taken_over"             // ended for an instance that died
	resultReinviteRefused result = "reinvite_refused"       // the far end refused the re-INVITE that moves the media
)
