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

// challengeSize is the number of random bytes in a challenge (the spec asks for at least 16).
const challengeSize = 32

// newChallenge makes a ceremony's challenge. Tests that replay the W3C test vectors, whose
// challenges are fixed, replace it (a test-only hook: no API can choose a challenge).
var newChallenge = func() []byte {
	challenge := make([]byte, challengeSize)
	_, _ = rand.Read(challenge) // crypto/rand.Read never fails (Go 1.24+)
	return challenge
}

// supervisor owns one community's live ceremonies. It routes and counts; it never verifies,
// reads the store or waits.
type supervisor struct {
	community string
	deps      *deps
	// open are the ceremonies that still accept a result, by name.
	open map[string]openCeremony
	// alive counts ceremony actors that have not stopped yet (open or finishing).
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
		owners: map[string]owner{}, perLicense: map[string]int{}}
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
		if o, ok := s.owners[name]; ok && o.pid.Equal(m.Who) {
			delete(s.owners, name)
			if s.perLicense[o.licenseID]--; s.perLicense[o.licenseID] <= 0 {
				delete(s.perLicense, o.licenseID)
			}
		}
		if s.alive == 0 {
			// Go maps never shrink: after a burst, let the grown ones go.
			s.open, s.owners, s.perLicense = map[string]openCeremony{}, map[string]owner{}, map[string]int{}
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
	challenge := newChallenge()
	sessionInfo := m.sessionInfo
	if sessionInfo == "" {
		handle := make([]byte, 24)
		_, _ = rand.Read(handle)
		sessionInfo = base64.RawURLEncoding.EncodeToString(handle)
	}
	name := ceremonyName(challenge)
	c := &ceremony{deps: s.deps, kind: m.kind, challenge: challenge, sessionInfo: sessionInfo}
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
	// A result must come under the license that started its ceremony: another license of the
	// same community gets the answer a stranger gets.
	if !ok || c.kind != m.kind || c.licenseID != m.licenseID {
		ctx.Respond(failure{errCeremonyNotFound})
		return
	}
	if m.sessionInfo != "" && subtle.ConstantTimeCompare([]byte(m.sessionInfo), []byte(c.sessionInfo)) != 1 {
		ctx.Respond(failure{messages.Errorf(messages.CodeSessionMismatch,
			"the sessionInfo does not belong to the ceremony of this challenge")})
		return
	}
	// A challenge is accepted once: later copies of this result find no open ceremony.
	delete(s.open, m.name)
	ctx.Forward(c.pid)
}

// released is sent to a stopped ceremony's PID only to clear its cached process; it lands in
// the dead letters, unlogged.
type released struct{}

// IgnoreDeadLetterLogging keeps released out of the dead-letter log.
func (released) IgnoreDeadLetterLogging() {}
