package actors

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// Store is what the engine reads and writes.
type Store interface {
	persistence.Communities
	persistence.Users
	persistence.Credentials
	persistence.SignInSubjects
	persistence.Writer
	MetadataStore
}

// Config sets the engine's limits and identity.
type Config struct {
	// CeremonyTimeout is how long a ceremony waits for its result.
	CeremonyTimeout time.Duration
	// MaxCeremonies caps the live ceremonies of one community on this node (each node of a
	// cluster counts its own: see doc.go).
	MaxCeremonies int
	// MaxCeremoniesPerLicense caps the live ceremonies that one license holds in one
	// community on this node, so that one caller cannot take all of MaxCeremonies; zero means
	// a quarter of MaxCeremonies (at least 1).
	MaxCeremoniesPerLicense int
	// Issuer is the service's issuer, <public-url>/webauthn; a signature token's iss is
	// Issuer/tenants/<tenant id>.
	Issuer string
	// TokenTTL is the lifetime of signature tokens.
	TokenTTL time.Duration
	// SigningKey signs the tokens (ES256).
	SigningKey *ecdsa.PrivateKey
	// DecoySecret derives stable fake credentials for unknown usernames.
	DecoySecret []byte
	// RequestTimeout bounds how long a caller waits for an actor; it is a safety net, not a
	// path any answer takes.
	RequestTimeout time.Duration
	// FailedSignInsPerMinute and FailedSignInBurst size the token bucket of failed sign-ins per
	// credential on this node (each node of a cluster keeps its own); a license's bucket is
	// LicenseFailureFactor times larger and faster. A failure beyond a bucket's burst answers
	// 429 instead of its own error; a sign-in whose signature verifies is never refused. Zero
	// FailedSignInsPerMinute turns the limit off.
	FailedSignInsPerMinute float64
	FailedSignInBurst      float64
	LicenseFailureFactor   float64
	// Ceremonies, when set, keeps every ceremony's state in the store that the nodes of a
	// cluster share, so that any node finishes a ceremony that another one started (see
	// doc.go). Nil: one process, ceremonies in memory only.
	Ceremonies persistence.Ceremonies
	// ChallengeKey is the key of the MACs that challenges carry (challenge.go), at least 32
	// bytes; every node of a cluster needs the same one (cmd keeps it among the store's
	// secrets). Empty: a random key of this engine's own, which only one process can use, so
	// it is refused with Ceremonies.
	ChallengeKey []byte
	// Observer is told of ceremonies' ends, commits, clone warnings and tokens (observer.go),
	// for metrics; nil: nobody.
	Observer Observer
}

// DefaultMaxCeremoniesPerLicense is a license's share of a community's ceremonies when none is
// configured: a quarter, at least 1.
func DefaultMaxCeremoniesPerLicense(maxCeremonies int) int { return max(1, maxCeremonies/4) }

// Engine runs the actor system: the per-community supervisors and the store writer.
type Engine struct {
	system      *actor.ActorSystem
	limiter     *limiter
	deps        *deps
	writer      *actor.PID
	supervisors sync.Map // community id -> *actor.PID
	writes      *sync.WaitGroup
	commits     *commitCounts
	log         *zap.Logger
}

// deps is what every ceremony needs; it is immutable after start, so sharing it is safe.
type deps struct {
	cfg        Config
	store      Store
	signer     *Signer
	writer     *actor.PID
	dispatcher *workerDispatcher // runs the ceremonies' mailboxes
	models     *models           // vendor metadata and MDS entries, cached
	challenges challenges
	observer   Observer
	log        *zap.Logger
}

// NewEngine starts the actor system and the store writer.
func NewEngine(cfg Config, store Store, log *zap.Logger) (*Engine, error) {
	if cfg.CeremonyTimeout <= 0 || cfg.MaxCeremonies <= 0 {
		return nil, errors.New("ceremony timeout and max ceremonies must be positive")
	}
	switch {
	case len(cfg.ChallengeKey) == 0 && cfg.Ceremonies != nil:
		return nil, errors.New("a challenge key shared by every node is needed to keep ceremonies in a shared store")
	case len(cfg.ChallengeKey) == 0:
		cfg.ChallengeKey = make([]byte, challengeKeySize)
		_, _ = rand.Read(cfg.ChallengeKey) // crypto/rand.Read never fails (Go 1.24+)
	case len(cfg.ChallengeKey) < challengeKeySize:
		return nil, fmt.Errorf("the challenge key has %d bytes, fewer than %d", len(cfg.ChallengeKey), challengeKeySize)
	}
	if cfg.MaxCeremoniesPerLicense <= 0 {
		cfg.MaxCeremoniesPerLicense = DefaultMaxCeremoniesPerLicense(cfg.MaxCeremonies)
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 20 * time.Second // under the HTTP write timeout (30 s)
	}
	signer, err := NewSigner(cfg.SigningKey, cfg.Issuer, cfg.TokenTTL)
	if err != nil {
		return nil, err
	}
	// The actor runtime logs through slog; its warnings and errors go to our zap log.
	runtimeLog := zap.NewStdLog(log.Named("protoactor")).Writer()
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.NewTextHandler(runtimeLog, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}))
	e := &Engine{system: system, writes: &sync.WaitGroup{}, commits: newCommitCounts(), log: log,
		limiter: newLimiter(cfg.FailedSignInsPerMinute, cfg.FailedSignInBurst, cfg.LicenseFailureFactor)}
	w, err := system.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor {
		return &writer{store: store, inflight: e.writes, log: log, observer: observerOr(cfg.Observer), counts: e.commits}
	}, actor.WithDispatcher(inline)), "writer")
	if err != nil {
		return nil, fmt.Errorf("spawn writer: %w", err)
	}
	e.writer = w
	e.deps = &deps{cfg: cfg, store: store, signer: signer, writer: w, log: log,
		dispatcher: newWorkerDispatcher(ceremonyWorkers(), 300), models: newModels(store),
		challenges: newChallenges(cfg.ChallengeKey), observer: observerOr(cfg.Observer)}
	return e, nil
}

// Signer returns the token signer (its JWK set is published at /publickeys).
func (e *Engine) Signer() *Signer { return e.deps.signer }

// Stop stops every actor and waits for the writes in flight to commit.
func (e *Engine) Stop() {
	e.system.Shutdown()
	e.writes.Wait()
	e.deps.dispatcher.stop()
}

// Live returns the number of live ceremony actors of a community on this node.
func (e *Engine) Live(ctx context.Context, communityID string) (int, error) {
	res, err := e.request(ctx, e.supervisor(communityID), liveQuery{})
	if err != nil {
		return 0, err
	}
	return res.(int), nil
}

// LiveTotal returns the number of live ceremony actors of every community that has had one.
func (e *Engine) LiveTotal(ctx context.Context) (int, error) {
	total := 0
	var err error
	e.supervisors.Range(func(key, _ any) bool {
		var n int
		n, err = e.Live(ctx, key.(string))
		total += n
		return err == nil
	})
	return total, err
}

// LiveByCommunity returns the number of live ceremony actors of each community that has had
// one on this node (its supervisor is asked, as Live does); a community whose supervisor does
// not answer within ctx is left out. Metrics (at each scrape) and webauthnd stats read it, off
// the ceremonies' path.
func (e *Engine) LiveByCommunity(ctx context.Context) map[string]int {
	live := map[string]int{}
	e.supervisors.Range(func(key, _ any) bool {
		if n, err := e.Live(ctx, key.(string)); err == nil {
			live[key.(string)] = n
		}
		return ctx.Err() == nil
	})
	return live
}

// Ping checks that the actor system answers.
func (e *Engine) Ping(ctx context.Context) error {
	_, err := e.request(ctx, e.writer, ping{})
	return err
}

// BeginRegistration starts a registration ceremony. The ceremony reads the store under ctx.
func (e *Engine) BeginRegistration(ctx context.Context, m messages.BeginRegistration) (messages.RegistrationOptions, error) {
	return ask[messages.RegistrationOptions](ctx, e, m.CommunityID, begin{ctx: ctx, kind: kindRegistration, sessionInfo: m.SessionInfo, licenseID: m.LicenseID, msg: m}, nil)
}

// FinishRegistration delivers a registration result to its ceremony, which reads the store
// under ctx.
func (e *Engine) FinishRegistration(ctx context.Context, m messages.FinishRegistration) (messages.Registered, error) {
	f, err := e.finishOf(ctx, kindRegistration, m.Scope, m.SessionInfo, m, parseRegistration, m.Credential)
	return ask[messages.Registered](ctx, e, m.CommunityID, f, err)
}

// BeginSignIn starts a sign-in ceremony. The ceremony reads the store under ctx.
func (e *Engine) BeginSignIn(ctx context.Context, m messages.BeginSignIn) (messages.SignInOptions, error) {
	return ask[messages.SignInOptions](ctx, e, m.CommunityID, begin{ctx: ctx, kind: kindSignIn, sessionInfo: m.SessionInfo, licenseID: m.LicenseID, msg: m}, nil)
}

// FinishSignIn delivers an assertion to its ceremony. A sign-in that fails after its
// credential was found (a real passkey, or a decoy's) spends a token of the credential's bucket
// and of the license's; a failure that finds a bucket empty answers 429 rate_limited instead of
// its own error. The limit never refuses an assertion before it is verified: one whose
// signature verifies signs in whatever the buckets hold, so forged assertions for a victim's
// credential id cannot lock the victim out. The ceremony reads the store under ctx.
func (e *Engine) FinishSignIn(ctx context.Context, m messages.FinishSignIn) (messages.SignedIn, error) {
	f, err := e.finishOf(ctx, kindSignIn, m.Scope, m.SessionInfo, m, parseAssertion, m.Credential)
	res, err := ask[messages.SignedIn](ctx, e, m.CommunityID, f, err)
	var discoverable discoverableFailure
	if errors.As(err, &discoverable) {
		res.Discoverable, err = true, discoverable.error
	}
	var counted verificationFailure
	if errors.As(err, &counted) {
		err = counted.error
		if wait := e.limiter.fail(string(m.Credential.RawID), m.LicenseID); wait > 0 {
			err = &messages.Error{Code: messages.CodeRateLimited, RetryAfter: wait, Cause: counted.error,
				Message: "too many failed sign-ins with this credential or license; retry later"}
		}
	}
	return res, err
}

// finishOf parses a result's credential and checks its challenge's MACs (challenge.go): a
// challenge this service did not issue for this kind, community and license is refused here,
// before any supervisor or store sees it, on every node and with every store alike.
func (e *Engine) finishOf(ctx context.Context, kd kind, scope messages.Scope, sessionInfo string, msg any,
	parse func(messages.Credential) ([]byte, parsedResult, error), cred messages.Credential) (finish, error) {
	challenge, parsed, err := parse(cred)
	if err != nil {
		return finish{}, err
	}
	name, err := e.deps.challenges.check(challenge, kd, scope.CommunityID, scope.LicenseID, sessionInfo)
	if err != nil {
		return finish{}, err
	}
	return finish{ctx: ctx, kind: kd, name: name, sessionInfo: sessionInfo,
		licenseID: scope.LicenseID, msg: msg, parsed: parsed}, nil
}

// ask sends msg to a community's supervisor and returns its answer as a T, unless prior (an
// error found before asking) is set.
func ask[T any](ctx context.Context, e *Engine, communityID string, msg any, prior error) (T, error) {
	var zero T
	if prior != nil {
		return zero, prior
	}
	res, err := e.request(ctx, e.supervisor(communityID), msg)
	if err != nil {
		return zero, err
	}
	return res.(T), nil
}

// Write applies one store operation through the writer, grouped with the ceremonies' writes.
// ctx's deadline bounds the wait for the answer; the batch that carries op runs under the
// writer's own deadline, as it carries the writes of other requests too.
func (e *Engine) Write(ctx context.Context, op persistence.Op) (any, error) {
	res, err := e.request(ctx, e.writer, writeRequest{op: op})
	if err != nil {
		return nil, err
	}
	r := res.(writeResult)
	return r.value, r.err
}

// supervisor returns the community's supervisor, spawning it on first use.
func (e *Engine) supervisor(communityID string) *actor.PID {
	if pid, ok := e.supervisors.Load(communityID); ok {
		return pid.(*actor.PID)
	}
	props := actor.PropsFromProducer(func() actor.Actor {
		return newSupervisor(communityID, e.deps)
	}, actor.WithDispatcher(inline), actor.WithSupervisor(actor.NewOneForOneStrategy(0, 0, func(any) actor.Directive {
		// A ceremony that panicked has lost its state: stop it, keep its siblings.
		return actor.StopDirective
	})))
	pid, err := e.system.Root.SpawnNamed(props, "community/"+communityID)
	if err != nil && !errors.Is(err, actor.ErrNameExists) {
		e.log.Error("spawn community supervisor", zap.String("community", communityID), zap.Error(err))
	}
	actual, _ := e.supervisors.LoadOrStore(communityID, pid)
	return actual.(*actor.PID)
}

// request sends msg to pid and waits for its answer. Every actor answers every request, so
// the timeout is only a safety net: RequestTimeout, or less when ctx has a sooner deadline.
func (e *Engine) request(ctx context.Context, pid *actor.PID, msg any) (any, error) {
	timeout := e.deps.cfg.RequestTimeout
	if deadline, ok := ctx.Deadline(); ok {
		timeout = max(min(timeout, time.Until(deadline)), time.Millisecond)
	}
	res, err := e.system.Root.RequestFuture(pid, msg, timeout).Result()
	switch {
	case errors.Is(err, actor.ErrDeadLetter):
		// The ceremony stopped between the supervisor's routing and delivery.
		return nil, errCeremonyNotFound
	case err != nil:
		return nil, messages.Wrap(messages.CodeUnavailable, "the ceremony engine did not answer in time", err)
	}
	if f, ok := res.(failure); ok {
		return nil, f.err
	}
	return res, nil
}
