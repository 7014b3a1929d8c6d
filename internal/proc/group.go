package proc

import (
	"os/exec"
	"sync"
)

// Group is the set of children one tool started, stopped together in the reverse order of
// their start: a phone before the proxy it registered with, gateways before the Redis they
// use. The zero value is ready to use; it is safe for concurrent use.
type Group struct {
	mu       sync.Mutex // guards children
	children []*Child
}

// Start starts cmd as Start does and adds the child to the group.
func (g *Group) Start(name string, cmd *exec.Cmd, o Options) (*Child, error) {
	c, err := Start(name, cmd, o)
	if err != nil {
		return nil, err
	}
	g.Add(c)
	return c, nil
}

// Add adds a child started elsewhere, so Stop stops it with the others.
func (g *Group) Add(c *Child) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.children = append(g.children, c)
}

// Stop stops every child, the last started first, calls stopped (if not nil) after each,
// and empties the group. A child that had ended by itself is passed to stopped as well.
func (g *Group) Stop(stopped func(*Child)) {
	g.mu.Lock()
	cs := g.children
	g.children = nil
	g.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i].Stop()
		if stopped != nil {
			stopped(cs[i])
		}
	}
}
