package actors

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// ceremony is one in-flight registration or sign-in. It holds the challenge and the go-webauthn
// session, answers one begin and one result, and stops: after its result, when its timeout
// passes, or when it fails.
//
// With a shared store (Config.Ceremonies), the ceremony that answers a begin writes its state
// there before it answers (persist), and takes it back, atomically, when its result comes
// (take): so a result finishes once across the cluster. A rehydrated ceremony answers no
// begin: it is spawned for a result that reaches a node other than the one that issued the
// options, takes the state the issuing ceremony wrote, and finishes as that one would have.
type ceremony struct {
	deps        *deps
	kind        kind
	name        string // the actor's name, and the key of its state in the shared store
	challenge   []byte // its random bytes until begin seals them with their MACs
	sessionInfo string
	rehydrated  bool // spawned for a result of another node's ceremony

	scope     messages.Scope
	community persistence.Community
	wa        *webauthn.WebAuthn
	session   *webauthn.SessionData
	user      *waUser                         // the registering user, or the user (real or decoy) a sign-in names
	decoy     bool                            // a sign-in for an unknown username, answered with decoy passkeys
	selection messages.AuthenticatorSelection // what a registration's caller asked of the authenticator

	done   bool                             // answered its result, failed or expired: stopping
	caller *actor.PID                       // who waits for this ceremony's answer
	next   func(actor.Context, writeResult) // what to do when the pending write commits
	id     string                           // the actor's id, in each of its log lines

	// For the Observer (observer.go): when the options were asked for, whether they named no
	// user, whether a result came, and whether the end was reported.
	began        time.Time
	discoverable bool
	finishing    bool
	observed     bool
}

// Receive implements actor.Actor.
func (c *ceremony) Receive(ctx actor.Context) {
	defer c.recoverPanic(ctx)
	switch m := ctx.Message().(type) {
	case *actor.Started:
		c.id = ctx.Self().Id
		ctx.SetReceiveTimeout(c.deps.cfg.CeremonyTimeout)
	case begin:
		c.caller = ctx.Sender()
		c.began = time.Now()
		c.begin(ctx, m.ctx, m.msg)
	case finish:
		if c.rehydrated && !c.done && c.session == nil && c.caller == nil {
			c.caller, c.finishing = ctx.Sender(), true
			c.resume(ctx, m)
			return
		}
		if c.done || c.session == nil || c.caller != nil {
			// A result that raced the ceremony's end still gets an answer.
			ctx.Respond(failure{errCeremonyNotFound})
			return
		}
		c.caller, c.finishing = ctx.Sender(), true
		if c.deps.cfg.Ceremonies != nil {
			// The supervisor has routed the result here; another node may have finished the
			// ceremony, or be finishing it: whoever takes the state finishes it.
			if _, err := c.take(m.ctx); err != nil {
				c.fail(ctx, err)
				return
			}
		}
		c.finish(ctx, m)
	case writeResult:
		next := c.next
		c.next = nil
		if next != nil {
			next(ctx, m)
		}
	case *actor.ReceiveTimeout:
		if c.done {
			return
		}
		if c.caller != nil { // only if a write outlived the ceremony's whole timeout
			c.fail(ctx, messages.Errorf(messages.CodeUnavailable, "the ceremony timed out"))
			return
		}
		c.deps.log.Info("ceremony expired", c.idField(), zap.String("community", c.scope.CommunityID), zap.String("code", string(messages.OutcomeExpired)))
		c.ended(messages.OutcomeExpired)
		c.stop(ctx)
	}
}

// idField names the ceremony in a log line. (A child logger per ceremony cost every ceremony
// an encoded field and a cloned core, for lines that most ceremonies never write.)
func (c *ceremony) idField() zap.Field { return zap.String("ceremony", c.id) }

// recoverPanic answers the waiting caller with an error and re-panics, so that the supervisor
// stops this ceremony (and only this one).
func (c *ceremony) recoverPanic(ctx actor.Context) {
	r := recover()
	if r == nil {
		return
	}
	c.deps.log.Error("ceremony panicked", zap.String("ceremony", ctx.Self().Id), zap.Any("panic", r))
	if c.caller != nil {
		ctx.Send(c.caller, failure{messages.Errorf(messages.CodeInternal, "internal error")})
		c.caller = nil
	}
	c.ended(messages.CodeInternal)
	panic(r)
}

func (c *ceremony) answer(ctx actor.Context, v any) {
	if c.caller != nil {
		ctx.Send(c.caller, v)
		c.caller = nil
	}
}

// stop ends the ceremony after the messages already in its mailbox: a poison pill, not Stop,
// because Stop drops them unanswered.
func (c *ceremony) stop(ctx actor.Context) {
	if !c.done {
		c.done = true
		ctx.Poison(ctx.Self())
	}
}

// fail answers the caller with err and ends the ceremony.
func (c *ceremony) fail(ctx actor.Context, err error) {
	if c.kind == kindSignIn && c.discoverable && c.finishing {
		c.answer(ctx, failure{discoverableFailure{err}})
	} else {
		c.answer(ctx, failure{err})
	}
	c.logOutcome(err)
	c.ended(messages.ErrorCode(err))
	c.stop(ctx)
}

// failVerification fails a sign-in after its credential (a real one or a decoy's) was found and
// before its signature verified: the failures that the engine's limiter counts.
func (c *ceremony) failVerification(ctx actor.Context, err error) {
	c.fail(ctx, verificationFailure{err})
}

func (c *ceremony) logOutcome(err error) {
	var e *messages.Error
	fields := []zap.Field{c.idField(), zap.String("community", c.scope.CommunityID), zap.Int("kind", int(c.kind))}
	if c.decoy {
		fields = append(fields, zap.Bool("decoy", true)) // for operators only: clients cannot tell
	}
	if errors.As(err, &e) {
		fields = append(fields, zap.String("code", string(e.Code)))
		if e.Cause != nil {
			fields = append(fields, zap.NamedError("cause", e.Cause))
		}
		var pe *protocol.Error
		if errors.As(e.Cause, &pe) && pe.DevInfo != "" {
			// Expected challenge, origin and hashes: for operators, never for clients.
			c.deps.log.Debug("verifier detail", c.idField(), zap.String("devInfo", pe.DevInfo))
		}
	}
	c.deps.log.Info("ceremony failed", fields...)
}

// write hands op to the writer and continues with next once it has committed.
func (c *ceremony) write(ctx actor.Context, op persistence.Op, next func(actor.Context, writeResult)) {
	c.next = next
	ctx.Request(c.deps.writer, writeRequest{op: op})
}

// setup loads the community, checks the RP ID and builds the go-webauthn relying party.
func (c *ceremony) setup(rctx context.Context, scope messages.Scope) error {
	c.scope = scope
	community, err := c.deps.store.Community(rctx, scope.CommunityID)
	if errors.Is(err, persistence.ErrNotFound) {
		return messages.Errorf(messages.CodeCommunityUnknown, "unknown community")
	} else if err != nil {
		return messages.Wrap(messages.CodeInternal, "internal error", err)
	}
	if !slices.Contains(community.RPIDs, scope.RPID) {
		return messages.Errorf(messages.CodeRPIDNotAllowed, "dns is not an RP ID of this community")
	}
	return c.relyingParty(scope, community)
}

// relyingParty builds the go-webauthn relying party of a scope in a community: at options time
// from the community just read, in a rehydrated ceremony from the one the options were built
// from.
func (c *ceremony) relyingParty(scope messages.Scope, community persistence.Community) error {
	c.scope, c.community = scope, community
	timeouts := webauthn.TimeoutConfig{Enforce: true, Timeout: c.deps.cfg.CeremonyTimeout, TimeoutUVD: c.deps.cfg.CeremonyTimeout}
	var err error
	c.wa, err = webauthn.New(&webauthn.Config{
		RPID:                        scope.RPID,
		RPDisplayName:               community.Name,
		RPOrigins:                   community.Origins,
		RPTopOrigins:                community.TopOrigins,
		RPTopOriginVerificationMode: protocol.TopOriginExplicitVerificationMode,
		RPAllowCrossOrigin:          len(community.TopOrigins) > 0,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:      protocol.ResidentKeyRequirementPreferred,
			UserVerification: protocol.UserVerificationRequirement(community.UserVerification),
		},
		Timeouts: webauthn.TimeoutsConfig{Login: timeouts, Registration: timeouts},
	})
	if err != nil {
		return messages.Wrap(messages.CodeInternal, "internal error", fmt.Errorf("community %s: %w", community.ID, err))
	}
	return nil
}

// begin answers the begin message msg of a request whose context is rctx. In the ceremony's
// methods, ctx is the actor's context and rctx the request's, under which the store is read.
func (c *ceremony) begin(ctx actor.Context, rctx context.Context, msg any) {
	switch m := msg.(type) {
	case messages.BeginRegistration:
		c.challenge = c.deps.challenges.seal(c.challenge, c.kind, m.CommunityID, m.LicenseID, c.sessionInfo)
		c.beginRegistration(ctx, rctx, m)
	case messages.BeginSignIn:
		c.discoverable = m.Username == ""
		c.challenge = c.deps.challenges.seal(c.challenge, c.kind, m.CommunityID, m.LicenseID, c.sessionInfo)
		c.beginSignIn(ctx, rctx, m)
	}
}

func (c *ceremony) finish(ctx actor.Context, f finish) {
	if f.parsed.err != nil {
		c.fail(ctx, classify(f.parsed.err))
		return
	}
	switch m := f.msg.(type) {
	case messages.FinishRegistration:
		c.finishRegistration(ctx, f.ctx, m, f.parsed.value.(*protocol.ParsedCredentialCreationData))
	case messages.FinishSignIn:
		c.finishSignIn(ctx, f.ctx, m, f.parsed.value.(*protocol.ParsedCredentialAssertionData))
	}
}

// checkCrossOrigin refuses a clientDataJSON from a cross-origin iframe unless the community
// lists top origins and names this one. go-webauthn checks a present topOrigin; this also
// refuses crossOrigin without one.
func checkCrossOrigin(cd protocol.CollectedClientData, community persistence.Community) error {
	if !cd.CrossOrigin {
		return nil
	}
	if len(community.TopOrigins) == 0 || !slices.Contains(community.TopOrigins, cd.TopOrigin) {
		return messages.Errorf(messages.CodeCrossOriginRefused, "cross-origin ceremonies are not allowed from this top origin")
	}
	return nil
}
