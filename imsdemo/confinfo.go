package imsdemo

import (
	"bytes"
	"encoding/xml"
	"strconv"
	"time"
)

// ConferenceInfoType is the MIME type of RFC 4575 conference state documents.
const ConferenceInfoType = "application/conference-info+xml"

// The element states of RFC 4575 section 4.6.
const (
	stateFull    = "full"
	statePartial = "partial"
	stateDeleted = "deleted"
)

// Endpoint statuses (RFC 4575 section 5.7.1) the server reports.
const (
	statusConnected    = "connected"
	statusOnHold       = "on-hold"
	statusDisconnected = "disconnected"
)

// Disconnection methods (RFC 4575 section 5.7.4).
const (
	discDeparted = "departed" // the participant hung up
	discBooted   = "booted"   // the server ended the session (shutdown)
	discFailed   = "failed"   // the session failed (media timeout, no ACK)
)

// The documents are rendered with encoding/xml, in the element order of the RFC 4575
// schema (a validating subscriber rejects another order).

type xConferenceInfo struct {
	XMLName     xml.Name      `xml:"urn:ietf:params:xml:ns:conference-info conference-info"`
	Entity      string        `xml:"entity,attr"`
	State       string        `xml:"state,attr"`
	Version     uint32        `xml:"version,attr"`
	Description *xDescription `xml:"conference-description,omitempty"`
	ConfState   *xConfState   `xml:"conference-state,omitempty"`
	Users       *xUsers       `xml:"users,omitempty"`
}

type xDescription struct {
	DisplayText string     `xml:"display-text,omitempty"`
	Subject     string     `xml:"subject,omitempty"`
	MaxUsers    int        `xml:"maximum-user-count,omitempty"`
	Media       []xAvMedia `xml:"available-media>entry"`
}

type xAvMedia struct {
	Label  string `xml:"label,attr"`
	Type   string `xml:"type"`
	Status string `xml:"status"`
}

type xConfState struct {
	UserCount int  `xml:"user-count"`
	Active    bool `xml:"active"`
	Locked    bool `xml:"locked"`
}

type xUsers struct {
	State string  `xml:"state,attr"`
	List  []xUser `xml:"user"`
}

type xUser struct {
	Entity      string      `xml:"entity,attr"`
	State       string      `xml:"state,attr"`
	DisplayText *string     `xml:"display-text"`
	Endpoints   []xEndpoint `xml:"endpoint"`
}

type xEndpoint struct {
	Entity      string      `xml:"entity,attr"`
	State       string      `xml:"state,attr"`
	DisplayText *string     `xml:"display-text"`
	Status      string      `xml:"status,omitempty"`
	JoinMethod  string      `xml:"joining-method,omitempty"`
	JoinInfo    *xExecution `xml:"joining-info"`
	DiscMethod  string      `xml:"disconnection-method,omitempty"`
	DiscInfo    *xExecution `xml:"disconnection-info"`
	Media       []xMedia    `xml:"media"`
	CallInfo    *xCallInfo  `xml:"call-info"`
}

type xExecution struct {
	When   string `xml:"when,omitempty"`
	Reason string `xml:"reason,omitempty"`
}

type xMedia struct {
	ID     string `xml:"id,attr"`
	Type   string `xml:"type"`
	Label  string `xml:"label,omitempty"`
	SrcID  string `xml:"src-id,omitempty"`
	Status string `xml:"status,omitempty"`
}

type xCallInfo struct {
	SIP xSIPDialog `xml:"sip"`
}

type xSIPDialog struct {
	CallID  string `xml:"call-id"`
	FromTag string `xml:"from-tag"`
	ToTag   string `xml:"to-tag"`
}

// member is a user element of a room's state: one participant, by identity, with the
// devices (endpoints) through which it joined.
type member struct {
	entity    string // the participant's address of record
	display   string
	endpoints []*endpoint
}

// endpoint is one session of a member, live or departed (kept until goneAt).
type endpoint struct {
	entity  string // the Contact of the participant's INVITE
	display string
	status  string
	dir     Direction // media direction as the participant sees it (its offer)
	ssrc    uint32    // the SSRC of the mix sent to it
	joined  time.Time
	callID  string
	fromTag string // the participant's tag
	toTag   string // ours
	leg     *leg   // nil once departed

	discMethod string
	discWhen   time.Time
	discReason string
	goneAt     time.Time // when the departed endpoint is deleted from the state
}

// xml renders the endpoint in full.
func (e *endpoint) xml() xEndpoint {
	x := xEndpoint{Entity: e.entity, State: stateFull, Status: e.status, JoinMethod: "dialed-in",
		JoinInfo: &xExecution{When: e.joined.UTC().Format(time.RFC3339)}}
	if e.display != "" {
		d := e.display
		x.DisplayText = &d
	}
	if e.status == statusDisconnected {
		x.DiscMethod = e.discMethod
		x.DiscInfo = &xExecution{When: e.discWhen.UTC().Format(time.RFC3339), Reason: e.discReason}
	} else {
		x.Media = []xMedia{{ID: "1", Type: "audio", Label: "main-audio",
			SrcID: strconv.FormatUint(uint64(e.ssrc), 10), Status: string(e.dir)}}
	}
	x.CallInfo = &xCallInfo{SIP: xSIPDialog{CallID: e.callID, FromTag: e.fromTag, ToTag: e.toTag}}
	return x
}

// xml renders the member with all its endpoints.
func (m *member) xml(state string) xUser {
	u := xUser{Entity: m.entity, State: state}
	if m.display != "" {
		d := m.display
		u.DisplayText = &d
	}
	for _, e := range m.endpoints {
		u.Endpoints = append(u.Endpoints, e.xml())
	}
	return u
}

// connected counts the member's endpoints that are in the conference (not departed).
func (m *member) connected() int {
	n := 0
	for _, e := range m.endpoints {
		if e.leg != nil {
			n++
		}
	}
	return n
}

// marshalConfInfo renders a document with its XML declaration.
func marshalConfInfo(doc *xConferenceInfo) []byte {
	var b bytes.Buffer
	b.WriteString(xml.Header)
	// Not indented: a document of a few participants then fits a UDP datagram.
	enc := xml.NewEncoder(&b)
	if err := enc.Encode(doc); err != nil {
		// Only unencodable types fail, and ours are all strings and numbers.
		return nil
	}
	b.WriteByte('\n')
	return b.Bytes()
}
