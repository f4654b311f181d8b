package messages

// CeremonyKind is a ceremony's kind as metrics count it: the engine reports it, the metrics
// label it, and neither needs the other's package.
type CeremonyKind string

// The ceremony kinds. A sign-in whose options named no user (the authenticator offers its
// passkeys) is discoverable; one that names a user, known or not, is a sign-in.
const (
	KindRegistration CeremonyKind = "registration"
	KindSignIn       CeremonyKind = "signin"
	KindDiscoverable CeremonyKind = "discoverable"
)

// CeremonyKinds lists every CeremonyKind.
var CeremonyKinds = []CeremonyKind{KindRegistration, KindSignIn, KindDiscoverable}

// The outcomes of a ceremony that are not error codes: a ceremony ends with OutcomeOK, with
// OutcomeExpired, or with the Code of the error it answered.
const (
	// OutcomeOK is a ceremony that answered its result with success.
	OutcomeOK Code = "ok"
	// OutcomeExpired is a ceremony whose result did not come within the ceremony timeout.
	OutcomeExpired Code = "ceremony_expired"
)
