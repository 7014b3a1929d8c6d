package users

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClientOf returns the client key of the browser user is logged in with ("" when the user
// has no live session). With UserOf it makes Users the AS adapter's Directory: the
// client key stays in the registration record, never in the DSM.
func (u *Users) ClientOf(ctx context.Context, user string) (string, error) {
	vals, err := u.st.Redis().HMGet(ctx, u.keys.record(user), recClient, recDeadline).Result()
	if err != nil {
		return "", fmt.Errorf("users: client of %s: %w", user, err)
	}
	client, _ := vals[0].(string)
	d, _ := vals[1].(string)
	ms, _ := strconv.ParseInt(d, 10, 64)
	if client == "" || time.Now().UnixMilli() >= ms {
		return "", nil // no record, or a session that has ended (logout, or not refreshed)
	}
	return client, nil
}

// UserOf returns the user the browser with client key client is logged in as ("" when
// none): the reverse key names a candidate, and the user's record must still name client
// (a user who logged in from another browser since is no longer this one's).
func (u *Users) UserOf(ctx context.Context, client string) (string, error) {
	user, err := u.st.Redis().Get(ctx, u.keys.client(client)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("users: user of a client: %w", err)
	}
	cur, err := u.ClientOf(ctx, user)
	if err != nil || cur != client {
		return "", err
	}
	return user, nil
}
