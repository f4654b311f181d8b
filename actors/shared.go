package actors

// Ceremonies in a store that the nodes of a cluster share (Config.Ceremonies). Actors stay
// node-local: each node keeps its supervisors and its ceremony actors, with their timeouts and
// caps. What crosses nodes is each ceremony's state (state.go), written when its options are
// issued and taken, atomically and once, by whichever node the result reaches:
//
//   - the issuing node: its supervisor routes the result to the ceremony actor, which takes the
//     state before it verifies; the state being gone means another node has finished it;
//   - any other node: its supervisor finds no open ceremony of that name and spawns a
//     rehydrated ceremony actor, which takes the state, makes the checks the issuing node's
//     supervisor makes, and finishes the ceremony as the issuing actor would have.
//
// Of two copies of a result sent to two nodes at once, both actors take; one gets the state.

import (
	"context"
	"crypto/subtle"
	"errors"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// persist writes the state of a ceremony whose options were just built, under the request's
// context, before the options are answered: a result may reach any node as soon as the
// options reach the client. Without a shared store it does nothing.
func (c *ceremony) persist(rctx context.Context) error {
	store := c.deps.cfg.Ceremonies
	if store == nil {
		return nil
	}
	state, err := c.encodeState()
	if err != nil {
		return messages.Wrap(messages.CodeInternal, "internal error", err)
	}
	expires := c.session.Expires
	if expires.IsZero() {
		expires = time.Now().Add(c.deps.cfg.CeremonyTimeout)
	}
	err = store.PutCeremony(rctx, persistence.Ceremony{ID: c.name, CommunityID: c.scope.CommunityID,
		State: state, Expires: expires})
	if err != nil {
		return messages.Wrap(messages.CodeInternal, "internal error", err)
	}
	return nil
}

// take removes the ceremony's state from the shared store, under the result's context. Not
// finding it means another node took it (or it expired): ceremony_not_found. A failure of the
// store leaves the state where it was, for a later copy of the result on another node.
func (c *ceremony) take(rctx context.Context) (persistence.Ceremony, error) {
	row, err := c.deps.cfg.Ceremonies.TakeCeremony(rctx, c.name)
	switch {
	case errors.Is(err, persistence.ErrNotFound):
		return row, errCeremonyNotFound
	case err != nil:
		return row, messages.Wrap(messages.CodeInternal, "internal error", err)
	}
	return row, nil
}

// resume finishes, on this node, a ceremony that another node issued: it takes the state,
// checks the result against it and goes on as the issuing ceremony would have.
func (c *ceremony) resume(ctx actor.Context, f finish) {
	row, err := c.take(f.ctx)
	if err != nil {
		c.fail(ctx, err)
		return
	}
	s, err := decodeState(row.State)
	if err != nil {
		// A node of another version wrote it (a rolling upgrade), or it is damaged: the
		// client's only way on is a new ceremony, as with an expired one.
		c.deps.log.Warn("ceremony state unreadable", c.idField(), zap.Error(err))
		c.fail(ctx, errCeremonyNotFound)
		return
	}
	// The checks of the issuing node's supervisor. The challenge's MACs, checked before any
	// supervisor, refuse all of these already (and without taking the state), and a state's
	// name is a digest of its challenge: a mismatch here means a leaked challenge key or a
	// bug, and the ceremony is lost to it.
	if row.CommunityID != c.scope.CommunityID || s.Scope.CommunityID != c.scope.CommunityID ||
		s.Kind != f.kind || s.Scope.LicenseID != f.licenseID {
		c.fail(ctx, errCeremonyNotFound)
		return
	}
	if f.sessionInfo != "" && subtle.ConstantTimeCompare([]byte(f.sessionInfo), []byte(s.SessionInfo)) != 1 {
		c.fail(ctx, errSessionMismatch)
		return
	}
	if !time.Now().Before(s.Expires) {
		// The store did not sweep it yet, or the nodes' clocks differ: the issuing node's
		// actor would have expired by now.
		c.fail(ctx, errCeremonyNotFound)
		return
	}
	if err := c.restore(s); err != nil {
		c.fail(ctx, err)
		return
	}
	c.finish(ctx, f)
}
