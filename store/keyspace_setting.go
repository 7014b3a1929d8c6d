package store

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// notifyFlags are the keyspace notification classes the feed needs: keyspace events (K)
// of hash commands (h, the field and meta hashes) and generic ones (g, the del of a hash
// that HDEL emptied).
const notifyFlags = "Khg"

// KeyspaceNode is what the feed last learnt of one Redis node's notify-keyspace-events.
type KeyspaceNode struct {
	// Addr is the node's address.
	Addr string
	// Flags is the node's setting as last read or set ("" before the first read).
	Flags string
	// OK is true when Flags delivers the events the feed needs.
	OK bool
	// Sets counts the times the feed set the setting on this node because it was missing:
	// at the first connection to a node started without it, and after every restart or
	// CONFIG SET that dropped it.
	Sets int64
	// Err is the last error reading or setting it ("" after a good check): a managed
	// Redis that refuses CONFIG shows here.
	Err string
	// Checked is when the setting was last read.
	Checked time.Time
}

// KeyspaceStatus is the state of keyspace notifications on every Redis node the feed
// listens to.
type KeyspaceStatus struct {
	// Off is true when the feed was configured not to use keyspace notifications.
	Off bool
	// Nodes are the nodes seen so far, by address.
	Nodes []KeyspaceNode
}

// OK reports whether every known node delivers the events the feed needs (true when
// keyspace notifications are off by configuration: nothing is expected of Redis then).
func (s KeyspaceStatus) OK() bool {
	if s.Off {
		return true
	}
	if len(s.Nodes) == 0 {
		return false
	}
	for _, n := range s.Nodes {
		if !n.OK {
			return false
		}
	}
	return true
}

// String is the one-line summary /readyz shows.
func (s KeyspaceStatus) String() string {
	if s.Off {
		return "keyspace notifications: off (DSM_NO_KEYSPACE)"
	}
	if len(s.Nodes) == 0 {
		return "keyspace notifications: not checked yet"
	}
	out := "keyspace notifications:"
	for i, n := range s.Nodes {
		if i > 0 {
			out += ";"
		}
		state := "ok"
		if !n.OK {
			state = "MISSING " + notifyFlags
		}
		out += fmt.Sprintf(" %s %q %s, set %d times", n.Addr, n.Flags, state, n.Sets)
		if n.Err != "" {
			out += ", error: " + n.Err
		}
	}
	return out
}

// keyspaceState holds the KeyspaceNodes, updated by the listener and read by Keyspace.
type keyspaceState struct {
	mu    sync.Mutex // guards nodes
	nodes map[string]*KeyspaceNode
}

func (k *keyspaceState) node(addr string) *KeyspaceNode {
	if k.nodes == nil {
		k.nodes = map[string]*KeyspaceNode{}
	}
	n := k.nodes[addr]
	if n == nil {
		n = &KeyspaceNode{Addr: addr}
		k.nodes[addr] = n
	}
	return n
}

// Keyspace returns the state of keyspace notifications on every node seen so far.
func (f *Feed) Keyspace() KeyspaceStatus {
	s := KeyspaceStatus{Off: f.cfg.NoKeyspace}
	f.ks.mu.Lock()
	for _, n := range f.ks.nodes {
		s.Nodes = append(s.Nodes, *n)
	}
	f.ks.mu.Unlock()
	slices.SortFunc(s.Nodes, func(a, b KeyspaceNode) int {
		switch {
		case a.Addr < b.Addr:
			return -1
		case a.Addr > b.Addr:
			return 1
		}
		return 0
	})
	return s
}

// ensureNotify reads a node's notify-keyspace-events and sets it when it lacks a flag the
// feed needs, keeping what was set. It reports whether it set it. A node that restarted
// without the setting in its own configuration comes back without it: the feed calls
// this on every (re)connection and every KeyspaceCheck, so writes made outside the
// commit path are noticed again without a gateway restart.
func (f *Feed) ensureNotify(ctx context.Context, c *redis.Client) (set bool, err error) {
	addr := c.Options().Addr
	cur, err := c.ConfigGet(ctx, "notify-keyspace-events").Result()
	flags := cur["notify-keyspace-events"]
	if err == nil && !hasFlags(flags, notifyFlags) {
		flags = mergeFlags(flags, notifyFlags)
		if err = c.ConfigSet(ctx, "notify-keyspace-events", flags).Err(); err == nil {
			set = true
		}
	}
	f.ks.mu.Lock()
	n := f.ks.node(addr)
	prevErr, prevOK := n.Err, n.OK
	n.Checked = time.Now()
	if err != nil {
		n.Err = err.Error()
		n.OK = false
	} else {
		n.Err, n.Flags, n.OK = "", flags, true
		if set {
			n.Sets++
		}
	}
	sets, newErr := n.Sets, n.Err
	f.ks.mu.Unlock()
	switch {
	case err != nil && newErr != prevErr:
		// Once per change of error, not at every check: a managed Redis refuses CONFIG
		// for good.
		f.log.Warn("cannot check or set notify-keyspace-events; writes made outside the commit path will go unnoticed on this node",
			"node", addr, "err", err)
	case set && sets > 1:
		f.log.Warn("notify-keyspace-events had been dropped (a restart without it in the node's configuration, or a CONFIG SET); set it again",
			"node", addr, "flags", flags, "sets", sets)
	case set:
		f.log.Info("set notify-keyspace-events", "node", addr, "flags", flags)
	case err == nil && !prevOK && prevErr != "":
		f.log.Info("notify-keyspace-events readable again", "node", addr, "flags", flags)
	}
	return set, err
}

// hasFlags reports whether the notify-keyspace-events value cur delivers every class of
// want ("A" stands for every class but K and E).
func hasFlags(cur, want string) bool {
	return mergeFlags(cur, want) == cur
}
