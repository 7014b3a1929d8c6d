package otbridge

import "testing"

func TestDefaultPolicy(t *testing.T) {
	alice := Claims{Client: "K1", User: "alice"}
	anon := Claims{Client: "K2"}
	for name, tc := range map[string]struct {
		c          Claims
		obj, field string
		write      bool
		want       bool
	}{
		"own player":                {alice, "players/K1/audio", "remote", true, true},
		"other player":              {alice, "players/K2/audio", "remote", true, false},
		"own index entry":           {alice, "players", "players/K1/audio", true, true},
		"other index entry":         {alice, "players", "players/K2/audio", true, false},
		"read players index":        {alice, "players", "", false, false},
		"read users":                {anon, "users", "", false, true},
		"read a user":               {anon, "users/bob", "", false, false},
		"read own user":             {alice, "users/alice", "", false, true},
		"read own conference list":  {alice, "users/alice/conf/c1", "", false, true},
		"read other user":           {alice, "users/bob", "", false, false},
		"read other user's list":    {alice, "users/bob/conf/c1", "", false, false},
		"read a user prefix":        {alice, "users/alicex", "", false, false},
		"own conferences":           {alice, "users/alice", "conferences", true, true},
		"own services":              {alice, "users/alice", "services", true, true},
		"other user's services":     {alice, "users/bob", "services", true, false},
		"own sign-in":               {alice, "users/alice", "sign_in", true, true},
		"other user's sign-in":      {alice, "users/bob", "sign_in", true, false},
		"no user, sign-in":          {anon, "users/alice", "sign_in", true, false},
		"own registration":          {alice, "users/alice", "registration", true, false},
		"own client key":            {alice, "users/alice", "client", true, false},
		"other user's conferences":  {alice, "users/bob", "conferences", true, false},
		"own participant list":      {alice, "users/alice/conf/c1", "sip:x@y", true, false},
		"users index":               {alice, "users", "alice", true, false},
		"no user, conferences":      {anon, "users/alice", "conferences", true, false},
		"no user, empty user's obj": {anon, "users/", "conferences", true, false},
	} {
		t.Run(name, func(t *testing.T) {
			var got bool
			if tc.write {
				got = DefaultPolicy{}.CanWrite(tc.c, tc.obj, tc.field)
			} else {
				got = DefaultPolicy{}.CanRead(tc.c, tc.obj)
			}
			if got != tc.want {
				t.Fatalf("%+v %s %q write=%v: %v, want %v", tc.c, tc.obj, tc.field, tc.write, got, tc.want)
			}
		})
	}
}
