package users

import "dsmgw/asadapter/sipport"

// The SIP edge lets a NOTIFY from outside the trust domain in only when it belongs to a
// subscription of ours.
var _ sipport.Subscriptions = (*Users)(nil)

// Subscribed reports whether callID is a conference subscription held here (the dialog of
// its NOTIFYs).
func (u *Users) Subscribed(callID string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	_, ok := u.subs[callID]
	return ok
}
