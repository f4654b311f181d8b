package actors

import (
	"time"

	"github.com/webauthnd/webauthnd/messages"
)

// Observer is told what the engine does, as it happens, for metrics. The engine calls it from
// its actors and from the writer's commit goroutine, so every method must return at once and
// never block: a counter or a histogram is fine, a channel send or a lock held across I/O is
// not. Its arguments are bounded: kinds, community ids, codes; never a username or a
// credential id.
type Observer interface {
	// CeremonyEnded is called once per ceremony actor, when it ends: with outcome
	// messages.OutcomeOK, the code of the error it answered, or messages.OutcomeExpired when
	// no result came in time (in a cluster, a ceremony that another node finished is counted
	// there with its outcome, and as expired on the node that issued its options). took is
	// the time from its options to its result; zero when no result came (it failed at its
	// options, or expired).
	CeremonyEnded(kind messages.CeremonyKind, community string, outcome messages.Code, took time.Duration)
	// Committed is called after each group commit of the writer with the number of writes in
	// its batch and the time the store took to commit them.
	Committed(batch int, took time.Duration)
	// CloneWarning is called for each sign-in answered with a clone warning: its passkey's
	// signature counter went backwards, at this sign-in or an earlier one.
	CloneWarning(community string)
	// TokenIssued is called for each signature token signed.
	TokenIssued(community string)
}

// noObserver is the Observer of an engine given none.
type noObserver struct{}

func (noObserver) CeremonyEnded(messages.CeremonyKind, string, messages.Code, time.Duration) {}
func (noObserver) Committed(int, time.Duration)                                              {}
func (noObserver) CloneWarning(string)                                                       {}
func (noObserver) TokenIssued(string)                                                        {}

// observerOr returns o, or an Observer that does nothing when o is nil.
func observerOr(o Observer) Observer {
	if o == nil {
		return noObserver{}
	}
	return o
}

// ceremonyKind is the kind of c as an Observer sees it: a sign-in whose options named no user
// is discoverable.
func (c *ceremony) ceremonyKind() messages.CeremonyKind {
	switch {
	case c.kind == kindRegistration:
		return messages.KindRegistration
	case c.discoverable:
		return messages.KindDiscoverable
	default:
		return messages.KindSignIn
	}
}

// ended tells the observer that c ends with outcome, once.
func (c *ceremony) ended(outcome messages.Code) {
	if c.observed {
		return
	}
	c.observed = true
	var took time.Duration
	if c.finishing && !c.began.IsZero() {
		took = time.Since(c.began)
	}
	c.deps.obs().CeremonyEnded(c.ceremonyKind(), c.scope.CommunityID, outcome, took)
}

// obs is d's Observer; deps that tests build by hand have none.
func (d *deps) obs() Observer {
	if d.observer == nil {
		return noObserver{}
	}
	return d.observer
}
