package actors

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/messages"
)

// supervisor owns one community's live ceremonies on this node. It routes and counts; it never
// verifies, reads the store or waits.
type supervisor struct {
	community string
	deps      *deps
	// open are the ceremonies of this node that still accept a result, by name.
	open map[string]openCeremony
	// rehydrating are the ceremonies of other nodes whose result reached this one: an actor
	// that takes the ceremony's state from the store and finishes it, by name. While one is
	// alive, another copy of its result is answered at once (only one can take the state).
	rehydrating map[string]*actor.PID
	// alive counts ceremony actors that have not stopped yet (open, finishing or rehydrating).
	alive int
	// owners are the live ceremonies' licenses, by name, and perLicense counts them per license:
	// one license may hold at most MaxCeremoniesPerLicense of the community's MaxCeremonies.
	owners     map[string]owner
	perLicense map[string]int
}

// owner is the license that started a live ceremony.
type owner struct {
	pid       *actor.PID
	licenseID string
}

type openCeremony struct {
	pid         *actor.PID
	kind        kind
	sessionInfo string
	licenseID   string
}

func newSupervisor(community string, d *deps) *supervisor {
	return &supervisor{community: community, deps: d, open: map[string]openCeremony{},
		rehydrating: map[string]*actor.PID{}, owners: map[string]owner{}, perLicense: map[string]int{}}
}

// Receive implements actor.Actor.
func (s *supervisor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case begin:
		s.begin(ctx, m)
	case finish:
		s.finish(ctx, m)
	case *actor.Terminated:
		s.alive--
		// protoactor's PIDSet keeps stale *PID pointers past its length after a removal, and a
		// PID caches its (now dead) process: sending to it once makes it drop that cache, so a
		// finished ceremony's memory can be collected.
		ctx.Send(m.Who, released{})
		name := strings.TrimPrefix(m.Who.Id, ctx.Self().Id+"/")
		if c, ok := s.open[name]; ok && c.pid.Equal(m.Who) {
			delete(s.open, name)
		}
		if pid, ok := s.rehydrating[name]; ok && pid.Equal(m.Who) {
			delete(s.rehydrating, name)
		}
		if o, ok := s.owners[name]; ok && o.pid.Equal(m.Who) {
			delete(s.owners, name)
			if s.perLicense[o.licenseID]--; s.perLicense[o.licenseID] <= 0 {
				delete(s.perLicense, o.licenseID)
			}
		}
		if s.alive == 0 {
			// Go maps never shrink: after a burst, let the grown ones go.
			s.open, s.owners, s.perLicense = map[string]openCeremony{}, map[string]owner{}, map[string]int{}
			s.rehydrating = map[string]*actor.PID{}
		}
	case liveQuery:
		ctx.Respond(s.alive)
	}
}

func (s *supervisor) begin(ctx actor.Context, m begin) {
	if s.alive >= s.deps.cfg.MaxCeremonies {
		ctx.Respond(failure{&messages.Error{Code: messages.CodeBusy, RetryAfter: time.Second,
			Message: "too many ceremonies in progress for this community; retry shortly"}})
		return
	}
	if s.perLicense[m.licenseID] >= s.deps.cfg.MaxCeremoniesPerLicense {
		ctx.Respond(failure{&messages.Error{Code: messages.CodeBusy, RetryAfter: time.Second,
			Message: "too many ceremonies in progress for this license in this community; retry shortly"}})
		return
	}
	sessionInfo := m.sessionInfo
	if sessionInfo == "" {
		handle := make([]byte, 24)
		_, _ = rand.Read(handle)
		sessionInfo = base64.RawURLEncoding.EncodeToString(handle)
	}
	// The ceremony seals these with the challenge's MACs: hashing takes no time of the
	// supervisor, which every begin of the community waits on.
	random := s.deps.challenges.random()
	name := ceremonyName(random)
	c := &ceremony{deps: s.deps, kind: m.kind, name: name, challenge: random, sessionInfo: sessionInfo}
	pid, err := ctx.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return c },
		actor.WithDispatcher(s.deps.dispatcher)), name)
	if err != nil {
		s.deps.log.Error("spawn ceremony", zap.String("community", s.community), zap.Error(err))
		ctx.Respond(failure{messages.Wrap(messages.CodeInternal, "internal error", err)})
		return
	}
	s.alive++
	s.perLicense[m.licenseID]++
	s.owners[name] = owner{pid: pid, licenseID: m.licenseID}
	s.open[name] = openCeremony{pid: pid, kind: m.kind, sessionInfo: sessionInfo, licenseID: m.licenseID}
	ctx.Forward(pid)
}

func (s *supervisor) finish(ctx actor.Context, m finish) {
	c, ok := s.open[m.name]
	if !ok {
		s.rehydrate(ctx, m)
		return
	}
	// A result must come under the license that started its ceremony: another license of the
	// same community gets the answer a stranger gets. (The challenge's MAC, checked before the
	// supervisor, refuses such a result already; this keeps the rule where the state is.)
	if c.kind != m.kind || c.licenseID != m.licenseID {
		ctx.Respond(failure{errCeremonyNotFound})
		return
	}
	if m.sessionInfo != "" && subtle.ConstantTimeCompare([]byte(m.sessionInfo), []byte(c.sessionInfo)) != 1 {
		ctx.Respond(failure{errSessionMismatch})
		return
	}
	// A challenge is accepted once: later copies of this result find no open ceremony.
	delete(s.open, m.name)
	ctx.Forward(c.pid)
}

// rehydrate routes a result that names no open ceremony of this node. Without a shared store
// there is nothing to find: ceremony_not_found at once. With one, the ceremony may be another
// node's: a ceremony actor is spawned to take its state from the store and finish it (the
// supervisor itself never touches the store). A ceremony of this node that is finishing or
// closing, or one whose state an actor of this node is taking already, is answered at once:
// its state is taken, or about to be.
func (s *supervisor) rehydrate(ctx actor.Context, m finish) {
	_, ours := s.owners[m.name]
	_, taking := s.rehydrating[m.name]
	if s.deps.cfg.Ceremonies == nil || ours || taking {
		ctx.Respond(failure{errCeremonyNotFound})
		return
	}
	c := &ceremony{deps: s.deps, kind: m.kind, name: m.name, rehydrated: true,
		scope: messages.Scope{CommunityID: s.community}}
	pid, err := ctx.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return c },
		actor.WithDispatcher(s.deps.dispatcher)), m.name)
	if err != nil {
		s.deps.log.Error("spawn ceremony", zap.String("community", s.community), zap.Error(err))
		ctx.Respond(failure{messages.Wrap(messages.CodeInternal, "internal error", err)})
		return
	}
	// Counted as alive (it is live work on this node), not against a license's share: that
	// share is of the ceremonies this node issued, and this one lasts one result.
	s.alive++
	s.rehydrating[m.name] = pid
	ctx.Forward(pid)
}

// released is sent to a stopped ceremony's PID only to clear its cached process; it lands in
// the dead letters, unlogged.
type released struct{}

// IgnoreDeadLetterLogging keeps released out of the dead-letter log.
func (released) IgnoreDeadLetterLogging() {}
