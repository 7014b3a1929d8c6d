// Package icsi identifies the IMS communication service of a SIP request, as 3GPP TS
// 24.229 (section 5.1.2A.1, 7.2A.8), TS 24.173 (MMTel) and TS 24.379 (MCPTT) ask of a
// UE: the player's service field chooses what our requests carry, and an incoming
// request's identification chooses the new player's service.
//
//   - mmtel, IMS Multimedia Telephony: P-Preferred-Service with the MMTel ICSI, the
//     ICSI feature tag +g.3gpp.icsi-ref in Contact, and Accept-Contact with the same.
//   - poc, push-to-talk done the MCPTT way (docs/push-to-talk.md): P-Preferred-Service
//     with the MCPTT ICSI, +g.3gpp.mcptt and the ICSI feature tag in Contact, and
//     Accept-Contact with +g.3gpp.mcptt;require;explicit (TS 24.379 section 10.1.1.2.1.1).
//
// A REGISTER's Contact carries the feature tags of every service the user's page offers,
// so that the S-CSCF routes each service to us (TS 24.229 section 5.1.1.2.1).
//
// Both the call control (package asadapter) and the users side (asadapter/users) use it:
// it knows nothing of either.
package icsi

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Service is an IMS communication service a player may use: the values of the DSM's
// service field (store/schema.json, players.services).
type Service string

// The services of the seed.
const (
	MMTel Service = "mmtel"
	PoC   Service = "poc"
)

// The ICSI values (TS 24.173 annex D, TS 24.379 annex D) and the feature tags (RFC 3840
// names with the "+" of a feature tag in a SIP header).
const (
	URNMMTel = "urn:urn-7:3gpp-service.ims.icsi.mmtel"
	URNMCPTT = "urn:urn-7:3gpp-service.ims.icsi.mcptt"

	TagICSI  = "+g.3gpp.icsi-ref"
	TagMCPTT = "+g.3gpp.mcptt"
)

// Sentinel errors.
var (
	// ErrUnknownService is a service field value the gateway does not offer.
	ErrUnknownService = errors.New("unknown service")
	// ErrUnsupportedService is a request identified as a service the gateway does not
	// offer (another ICSI): it gets a clear refusal, never a silent MMTel call.
	ErrUnsupportedService = errors.New("unsupported IMS communication service")
)

// Parse reads a player's service field. An empty field is MMTel, the seed's default and
// what a plain voice call is.
func Parse(field string) (Service, error) {
	switch Service(strings.TrimSpace(field)) {
	case "", MMTel:
		return MMTel, nil
	case PoC:
		return PoC, nil
	}
	return "", fmt.Errorf("%w: %.40q (want %q or %q)", ErrUnknownService, field, MMTel, PoC)
}

// URN returns the service's ICSI value.
func (s Service) URN() string {
	if s == PoC {
		return URNMCPTT
	}
	return URNMMTel
}

// icsiRef is the value of +g.3gpp.icsi-ref for URNs: each percent-encoded (the feature
// tag's string syntax of RFC 3840 has no ':'), comma-separated, quoted.
func icsiRef(urns ...string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i, u := range urns {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strings.ReplaceAll(u, ":", "%3A"))
	}
	b.WriteByte('"')
	return b.String()
}

// RequestHeaders returns the headers that identify the service on an initial request
// (INVITE) of a player: P-Preferred-Service and Accept-Contact.
func (s Service) RequestHeaders() []sip.Header {
	ac := "*;" + TagICSI + "=" + icsiRef(s.URN())
	if s == PoC {
		// MCPTT requires the MCPTT feature tag to be matched (RFC 3841 require, explicit).
		ac = "*;" + TagMCPTT + ";require;explicit"
	}
	return []sip.Header{
		sip.NewHeader("P-Preferred-Service", s.URN()),
		sip.NewHeader("Accept-Contact", ac),
	}
}

// AddContactTags adds the service's feature tags to the parameters of a request's
// Contact: the ICSI feature tag, and +g.3gpp.mcptt for push-to-talk.
func (s Service) AddContactTags(p *sip.HeaderParams) {
	if s == PoC {
		p.Add(TagMCPTT, "")
	}
	p.Add(TagICSI, icsiRef(s.URN()))
}

// AddRegisterTags adds the feature tags of the services a user's page offers to a
// REGISTER's Contact parameters: one ICSI feature tag listing every ICSI, and
// +g.3gpp.mcptt when push-to-talk is among them. No services means MMTel.
func AddRegisterTags(p *sip.HeaderParams, services []Service) {
	if len(services) == 0 {
		services = []Service{MMTel}
	}
	var urns []string
	for _, s := range services {
		if u := s.URN(); !slices.Contains(urns, u) {
			urns = append(urns, u)
		}
	}
	if slices.Contains(services, PoC) {
		p.Add(TagMCPTT, "")
	}
	p.Add(TagICSI, icsiRef(urns...))
}
