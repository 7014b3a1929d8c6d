package sipport

// Subscriptions is what the SIP edge asks the users side about a request in a dialog that
// is not a call: whether a Call-ID is one of its conference subscriptions, whose NOTIFYs
// may come from outside the trust domain (a notifier reached without the CSCF) and are let
// in by their dialog. *users.Users implements it; call control asks through its Users when
// they implement it too.
type Subscriptions interface {
	// Subscribed reports whether callID is a subscription the users side holds.
	Subscribed(callID string) bool
}
