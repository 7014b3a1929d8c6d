package users

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/redis/go-redis/v9"

	"dsmgw/asadapter/sipport"
)

// What call control asks of a registered user (sipport.Users): the binding its calls use
// as their Contact, and answers to digest challenges with its credentials. Both read the
// registration record in Redis, so any instance can place a user's call, whichever holds
// the registration; the credentials never leave this package.

var _ sipport.Users = (*Users)(nil)

// Binding returns the contact registered for user and the instance holding the
// registration; ok is false when the user has no live registration (none posted, the
// session ended, not registered yet, or no instance holds it).
func (u *Users) Binding(ctx context.Context, user string) (sipport.Binding, bool, error) {
	var hm *redis.SliceCmd
	var lv *redis.StringCmd
	_, err := u.st.Redis().Pipelined(ctx, func(p redis.Pipeliner) error {
		hm = p.HMGet(ctx, u.keys.record(user), recContact, recDeadline)
		lv = p.Get(ctx, u.keys.lease(user))
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return sipport.Binding{}, false, fmt.Errorf("users: binding of %s: %w", user, err)
	}
	vals, _ := hm.Result()
	holder, _ := lv.Result()
	if len(vals) != 2 || holder == "" {
		return sipport.Binding{}, false, nil
	}
	contact, _ := vals[0].(string)
	deadline, _ := vals[1].(string)
	ms, err := strconv.ParseInt(deadline, 10, 64)
	if err != nil || !time.UnixMilli(ms).After(time.Now()) || contact == "" {
		return sipport.Binding{}, false, nil
	}
	var c sip.Uri
	if err := sip.ParseUri(contact, &c); err != nil {
		return sipport.Binding{}, false, fmt.Errorf("users: binding of %s: contact %q: %w", user, contact, err)
	}
	// The lease is "<instance>/<random>"; instance names may hold a slash themselves.
	inst := holder
	if i := strings.LastIndexByte(holder, '/'); i >= 0 {
		inst = holder[:i]
	}
	return sipport.Binding{Contact: c, Instance: inst}, true, nil
}

// Authorize answers the challenge of res to req with user's credentials, as the user's
// REGISTER and SUBSCRIBE do. The error wraps sipport.ErrNoCredentials when the user has no
// live registration or registered without credentials.
func (u *Users) Authorize(ctx context.Context, user string, req *sip.Request, res *sip.Response) error {
	rec, err := u.loadRecord(ctx, user)
	if err != nil {
		return err
	}
	if rec == nil || !rec.Deadline.After(time.Now()) || rec.AuthUser == "" {
		return fmt.Errorf("users: answer a challenge for %s: %w", user, sipport.ErrNoCredentials)
	}
	if err := sipport.AnswerChallenge(req, res, credentials{rec.AuthUser, rec.Password}.digest()); err != nil {
		return fmt.Errorf("users: answer a challenge for %s: %w", user, err)
	}
	return nil
}
