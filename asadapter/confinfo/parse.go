// Package confinfo reads RFC 4575 conference state (application/conference-info+xml): it
// parses NOTIFY bodies within limits a hostile notifier cannot push past, and merges full
// and partial documents into a Roster of participants rendered as DSM fields. It is pure:
// one subscription owns each Roster, and nothing here does I/O.
package confinfo

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"
)

// ContentType is the MIME type of RFC 4575 conference state bodies.
const ContentType = "application/conference-info+xml"

// namespace is the XML namespace of RFC 4575 documents.
const namespace = "urn:ietf:params:xml:ns:conference-info"

// The element states of RFC 4575 section 4.6: a full element replaces what the subscriber
// holds, a partial one is merged into it, a deleted one removes it.
const (
	StateFull    = "full"
	StatePartial = "partial"
	StateDeleted = "deleted"
)

// Limits bound what Parse accepts, so a hostile or broken notifier cannot make the gateway
// allocate without bound. Zero fields take the values of DefaultLimits.
type Limits struct {
	// MaxBytes caps the body (256 KiB: a full state of 1,000 participants with one
	// endpoint each is about 200 KB; anything larger is not a conference we can mirror
	// into a DSM object of at most a few hundred fields anyway).
	MaxBytes int
	// MaxUsers caps the user elements of one document (1,000, for the same reason).
	MaxUsers int
	// MaxEndpoints caps the endpoint elements of one user (16: a participant joins from a
	// handful of devices at most).
	MaxEndpoints int
}

// DefaultLimits returns every limit at its default.
func DefaultLimits() Limits {
	return Limits{MaxBytes: 256 << 10, MaxUsers: 1000, MaxEndpoints: 16}
}

// withDefaults fills the zero (or negative) fields of l from DefaultLimits.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxBytes <= 0 {
		l.MaxBytes = d.MaxBytes
	}
	if l.MaxUsers <= 0 {
		l.MaxUsers = d.MaxUsers
	}
	if l.MaxEndpoints <= 0 {
		l.MaxEndpoints = d.MaxEndpoints
	}
	return l
}

// Info is a parsed conference-info document: only what the gateway mirrors into the DSM
// (the participants and their endpoints' status); descriptions, media and sidebars are
// ignored.
type Info struct {
	Entity  string // the conference URI
	State   string // full, partial or deleted
	Version uint32
	// Users is nil when the document has no users element (a partial update of other
	// parts of the conference state).
	Users *Users
}

// Users is the users element.
type Users struct {
	State string
	List  []User
}

// User is one user element: a participant.
type User struct {
	Entity    string
	State     string
	Display   *string // nil: no display-text element (partial: keep the old one)
	Endpoints []Endpoint
}

// Endpoint is one endpoint element of a user: a device through which the user takes
// part.
type Endpoint struct {
	Entity  string
	State   string
	Display *string
	Status  *string // nil: no status element
}

type xmlConfInfo struct {
	XMLName xml.Name
	Entity  *string    `xml:"entity,attr"`
	State   string     `xml:"state,attr"`
	Version *string    `xml:"version,attr"`
	Users   []xmlUsers `xml:"users"` // a slice, to refuse a document with two
}

type xmlUsers struct {
	State string    `xml:"state,attr"`
	List  []xmlUser `xml:"user"`
}

type xmlUser struct {
	Entity    *string       `xml:"entity,attr"`
	State     string        `xml:"state,attr"`
	Display   *string       `xml:"display-text"`
	Endpoints []xmlEndpoint `xml:"endpoint"`
}

type xmlEndpoint struct {
	Entity  *string `xml:"entity,attr"`
	State   string  `xml:"state,attr"`
	Display *string `xml:"display-text"`
	Status  *string `xml:"status"`
}

// endpointStatuses are the values of the status element (RFC 4575 section 5.7.1).
var endpointStatuses = map[string]bool{
	"connected": true, "disconnected": true, "on-hold": true, "muted-via-focus": true,
	"pending": true, "alerting": true, "dialing-in": true, "dialing-out": true,
	"disconnecting": true,
}

// Parse parses an application/conference-info+xml body. It rejects bodies over
// lim.MaxBytes with ErrBodyTooLarge and anything else it cannot use with ErrMalformed,
// always with the reason.
func Parse(body []byte, lim Limits) (*Info, error) {
	lim = lim.withDefaults()
	if len(body) > lim.MaxBytes {
		return nil, fmt.Errorf("%w: %d bytes > %d", ErrBodyTooLarge, len(body), lim.MaxBytes)
	}
	if err := checkCounts(body, lim); err != nil {
		return nil, err
	}
	var x xmlConfInfo
	dec := xml.NewDecoder(bytes.NewReader(body))
	dec.Strict = true
	if err := dec.Decode(&x); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if x.XMLName.Local != "conference-info" || (x.XMLName.Space != namespace && x.XMLName.Space != "") {
		return nil, fmt.Errorf("%w: root element {%s}%s", ErrMalformed, x.XMLName.Space, x.XMLName.Local)
	}
	if x.Entity == nil || strings.TrimSpace(*x.Entity) == "" {
		return nil, fmt.Errorf("%w: conference-info without entity", ErrMalformed)
	}
	if x.Version == nil {
		return nil, fmt.Errorf("%w: conference-info without version", ErrMalformed)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(*x.Version), 10, 32)
	if err != nil {
		return nil, fmt.Errorf("%w: version %.32q", ErrMalformed, *x.Version)
	}
	ci := &Info{Entity: strings.TrimSpace(*x.Entity), Version: uint32(v)}
	if ci.State, err = parseState(x.State, "conference-info"); err != nil {
		return nil, err
	}
	if len(x.Users) > 1 {
		return nil, fmt.Errorf("%w: %d users elements", ErrMalformed, len(x.Users))
	}
	if len(x.Users) == 0 {
		return ci, nil
	}
	ci.Users = &Users{List: make([]User, 0, len(x.Users[0].List))}
	if ci.Users.State, err = parseState(x.Users[0].State, "users"); err != nil {
		return nil, err
	}
	for i, u := range x.Users[0].List {
		cu, err := convertUser(u, i)
		if err != nil {
			return nil, err
		}
		ci.Users.List = append(ci.Users.List, cu)
	}
	return ci, nil
}

func convertUser(u xmlUser, i int) (User, error) {
	if u.Entity == nil || strings.TrimSpace(*u.Entity) == "" {
		return User{}, fmt.Errorf("%w: user %d without entity", ErrMalformed, i)
	}
	cu := User{Entity: strings.TrimSpace(*u.Entity), Display: trimPtr(u.Display)}
	var err error
	if cu.State, err = parseState(u.State, "user"); err != nil {
		return User{}, err
	}
	for j, e := range u.Endpoints {
		if e.Entity == nil || strings.TrimSpace(*e.Entity) == "" {
			return User{}, fmt.Errorf("%w: endpoint %d of user %.64q without entity", ErrMalformed, j, cu.Entity)
		}
		ce := Endpoint{Entity: strings.TrimSpace(*e.Entity), Display: trimPtr(e.Display), Status: trimPtr(e.Status)}
		if ce.State, err = parseState(e.State, "endpoint"); err != nil {
			return User{}, err
		}
		if ce.Status != nil && !endpointStatuses[*ce.Status] {
			return User{}, fmt.Errorf("%w: endpoint status %.32q", ErrMalformed, *ce.Status)
		}
		cu.Endpoints = append(cu.Endpoints, ce)
	}
	return cu, nil
}

func parseState(s, elem string) (string, error) {
	switch strings.TrimSpace(s) {
	case "", StateFull:
		return StateFull, nil // the schema's default
	case StatePartial:
		return StatePartial, nil
	case StateDeleted:
		return StateDeleted, nil
	}
	return "", fmt.Errorf("%w: %s state %.32q", ErrMalformed, elem, s)
}

func trimPtr(p *string) *string {
	if p == nil {
		return nil
	}
	s := strings.TrimSpace(*p)
	return &s
}

// checkCounts walks the tokens once before decoding, so a body of many tiny user or
// endpoint elements is refused before it is turned into structs.
func checkCounts(body []byte, lim Limits) error {
	dec := xml.NewDecoder(bytes.NewReader(body))
	users, endpoints := 0, 0
	for {
		tok, err := dec.RawToken()
		if err != nil {
			return nil // syntax errors are reported by the real decode
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch se.Name.Local {
		case "user":
			users++
			endpoints = 0
			if users > lim.MaxUsers {
				return fmt.Errorf("%w: more than %d users", ErrMalformed, lim.MaxUsers)
			}
		case "endpoint":
			endpoints++
			if endpoints > lim.MaxEndpoints {
				return fmt.Errorf("%w: more than %d endpoints in one user", ErrMalformed, lim.MaxEndpoints)
			}
		}
	}
}
