package asadapter

import (
	"context"

	"github.com/emiago/sipgo/sip"

	"dsmgw/store"
)

type call struct{}

func (c *call) poke()                                                        {}
func (a *Adapter) callFor(player string) *call                               { return nil }
func (a *Adapter) startOutgoing(ctx context.Context, p string, s store.Read) {}
func (a *Adapter) maybeTakeover(ctx context.Context, p string)               {}
func (a *Adapter) abandonAll()                                               {}
func (a *Adapter) onStrayResponse(r *sip.Response)                           {}
func (a *Adapter) registerHandlers()                                         {}
