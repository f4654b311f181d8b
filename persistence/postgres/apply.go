package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// maxAttempts bounds the runs of a batch whose transaction PostgreSQL aborted to resolve a
// deadlock or a serialization failure (as the embedded store retries a conflicting commit).
const maxAttempts = 10

// Apply runs ops in one transaction and returns one Result per op, keeping the batch contract
// of [persistence.Op]: each op runs under a SAVEPOINT that its refusal rolls back to, so the
// others still commit.
//
// The savepoints, BEGIN and COMMIT cost no round trip of their own: they go out with the next
// statement that needs an answer (see txn). Ops that are one statement each (RecordSignIn,
// RememberRequest, RevokeLicense), which refuse by what their statement returns and never by
// failing, need no savepoint at all: they wait in the pipeline, so a batch of sign-ins is one
// round trip, BEGIN and COMMIT included. Should one of those statements fail nonetheless, the
// batch runs again with a savepoint around every op, so that only the failing op fails.
//
// Every row an op decides on is read with the lock it needs (FOR UPDATE, or a single UPDATE
// that re-checks the latest row), under READ COMMITTED: concurrent batches of any number of
// nodes wait for each other's rows instead of failing. A deadlock between two batches aborts
// one of them, which runs again.
func (s *Store) Apply(ctx context.Context, ops []persistence.Op) []persistence.Result {
	results := make([]persistence.Result, len(ops))
	run := make([]int, 0, len(ops))
	for i, op := range ops {
		if err := persistence.Check(op); err != nil {
			results[i] = persistence.Result{Err: err}
			continue
		}
		run = append(run, i)
	}
	if len(run) == 0 {
		return results
	}
	safe := false
	for attempt := 1; ; attempt++ {
		err := s.applyOnce(ctx, ops, run, results, safe)
		if err == nil {
			break
		}
		// Only a transaction the server aborted is run again: one whose connection failed may
		// have committed before the answer was lost.
		switch {
		case ctx.Err() != nil || !abortedByServer(err):
		case retryable(err) && attempt < maxAttempts:
			continue
		case !safe:
			safe = true
			continue
		}
		cause := s.secret.error(err)
		for _, i := range run {
			results[i] = persistence.Result{Err: persistence.StoreInternal(cause)}
		}
		break
	}
	s.afterCommit(ops, run)
	return results
}

// applyOnce runs the ops of run in one transaction and fills their results. An error ends the
// attempt: nothing of it was committed.
func (s *Store) applyOnce(ctx context.Context, ops []persistence.Op, run []int, results []persistence.Result, safe bool) (err error) {
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	t := &txn{conn: pc.Conn(), op: -1}
	defer func() {
		if pc.Conn().PgConn().TxStatus() != 'I' && !pc.Conn().IsClosed() {
			// A failed attempt left its transaction open: end it, or the pool closes the
			// connection.
			rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, _ = pc.Conn().Exec(rctx, "ROLLBACK")
			cancel()
		}
		pc.Release()
	}()
	t.control("BEGIN", nil)
	for _, i := range run {
		t.op = i
		t.opFailed = false
		if st, ok := s.oneStatement(ops[i], &results[i]); ok && !safe {
			st.op = i
			t.pending = append(t.pending, st)
			continue
		}
		// The op's savepoint: set says whether it reached the server (an op that sent nothing
		// has nothing to roll back).
		set, mark := false, len(t.pending)
		t.control("SAVEPOINT op", func(pgx.Rows) error { set = true; return nil })
		v, err := s.runOp(ctx, t, ops[i], &results[i])
		if err == nil && len(t.pending) > 0 {
			// What the op queued last is part of it: its failure must be the op's.
			err = t.flush(ctx)
		}
		if t.broken != nil {
			return t.broken
		}
		if t.opFailed && err == nil {
			err = errors.New("a statement of the op failed")
		}
		if err != nil {
			if retryable(err) || !abortedByServer(err) && isFlushError(err) {
				// The transaction must run again, or cannot go on.
				return err
			}
			err = s.refusal(err)
		}
		t.op = -1
		results[i] = persistence.Result{Value: v, Err: err}
		switch {
		case !set:
			// The op sent nothing: drop its savepoint and whatever it queued.
			t.pending = t.pending[:mark]
		case err != nil && !keepsWrites(err) && t.opFailed:
			// The transaction is in the failed state, in which the server does not even
			// prepare a statement: roll back in the simple protocol, one round trip.
			t.pending = t.pending[:0]
			if _, err := t.conn.Exec(ctx, "ROLLBACK TO SAVEPOINT op; RELEASE SAVEPOINT op"); err != nil {
				return err
			}
		case err != nil && !keepsWrites(err):
			t.pending = t.pending[:0]
			t.control("ROLLBACK TO SAVEPOINT op", nil)
			t.control("RELEASE SAVEPOINT op", nil)
		default:
			t.control("RELEASE SAVEPOINT op", nil)
		}
	}
	t.op = -1
	committed := false
	t.control("COMMIT", func(rows pgx.Rows) error {
		for rows.Next() {
		}
		// COMMIT of a transaction that failed answers ROLLBACK, without an error.
		committed = rows.CommandTag().String() == "COMMIT"
		return nil
	})
	if err := t.flush(ctx); err != nil {
		return err
	}
	if t.broken != nil {
		return t.broken
	}
	if !committed {
		return errors.New("the transaction did not commit")
	}
	return nil
}

// keepsWrites says whether a refused op keeps what it wrote: only a counter regression, whose
// clone warning is the point of the refusal.
func keepsWrites(err error) bool { return errors.Is(err, persistence.ErrCounterRegression) }

// refusal turns an op's error into what its Result carries: a refusal as it is, a database
// error as an internal error (or, for text the database cannot store, a 400).
func (s *Store) refusal(err error) error {
	var me *messages.Error
	if errors.As(err, &me) {
		return s.secret.error(err)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "22021", "22P05": // character_not_in_repertoire, untranslatable_character
			return messages.Wrap(messages.CodeInvalidRequest, "a text is not valid UTF-8 or holds a NUL byte", err)
		case "54000": // program_limit_exceeded: a value too large for an index
			return messages.Wrap(messages.CodeInvalidRequest, "a value is too large", err)
		}
	}
	return persistence.StoreInternal(s.secret.error(err))
}

// retryable says whether err is PostgreSQL's abort of a transaction that may succeed if run
// again: a deadlock or a serialization failure.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// abortedByServer says whether err is PostgreSQL's refusal of a statement, which aborted the
// transaction and committed nothing (as opposed to a lost connection, after which a COMMIT sent
// may or may not have been applied).
func abortedByServer(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	class := pe.Code[:2]
	return class != "08" && class != "57" && pe.Severity != "FATAL" && pe.Severity != "PANIC"
}

func isFlushError(err error) bool {
	var fe *flushError
	return errors.As(err, &fe)
}

// afterCommit invalidates what this process caches of the records the batch ran (ops[i] for i in
// run): the config cache, the vendor and keyring generations. It runs whether or not the commit
// succeeded: a needless invalidation costs one re-read. Other processes learn of the change from
// the database's notification (notify.go).
func (s *Store) afterCommit(ops []persistence.Op, run []int) {
	var config, vendor, keyring bool
	for _, i := range run {
		config = config || persistence.ChangesConfig(ops[i])
		vendor = vendor || persistence.WritesVendorMetadata(ops[i])
		_, rotate := ops[i].(persistence.RotateKey)
		keyring = keyring || rotate
	}
	if config {
		s.clearConfig()
	}
	if vendor {
		s.vendorGen.Add(1)
	}
	if keyring {
		s.keyringGen.Add(1)
	}
}

// runOp runs one op in t, under its savepoint.
func (s *Store) runOp(ctx context.Context, t *txn, op persistence.Op, res *persistence.Result) (any, error) {
	if st, ok := s.oneStatement(op, res); ok {
		st.op = t.op
		t.pending = append(t.pending, st)
		if err := t.flush(ctx); err != nil {
			return nil, err
		}
		return res.Value, res.Err
	}
	switch o := op.(type) {
	case persistence.PutTenant:
		return putTenant(ctx, t, o)
	case persistence.PutCommunity:
		return putCommunity(ctx, t, o)
	case persistence.PatchCommunity:
		return patchCommunity(ctx, t, o)
	case persistence.PutLicense:
		return putLicense(ctx, t, o)
	case persistence.PutSecretIfAbsent:
		return putSecretIfAbsent(ctx, t, o)
	case persistence.RotateKey:
		return rotateKey(ctx, t, o)
	case persistence.AddCredential:
		return addCredential(ctx, t, o)
	case persistence.LinkCredential:
		return linkCredential(ctx, t, o)
	case persistence.UnlinkCredential:
		return unlinkCredential(ctx, t, o)
	case persistence.RemoveCredentials:
		return removeCredentials(ctx, t, o)
	case persistence.PutVendorMetadata:
		return putVendorMetadata(ctx, t, o)
	case persistence.PatchVendorMetadata:
		return patchVendorMetadata(ctx, t, o)
	}
	return nil, fmt.Errorf("the PostgreSQL store has no implementation of %T", op)
}

// oneStatement returns the statement of an op that is one statement, whose read fills res;
// false for the others.
func (s *Store) oneStatement(op persistence.Op, res *persistence.Result) (stmt, bool) {
	switch o := op.(type) {
	case persistence.RecordSignIn:
		return recordSignIn(o, res), true
	case persistence.RememberRequest:
		return rememberRequest(o, res), true
	case persistence.RevokeLicense:
		return revokeLicense(o, res), true
	}
	return stmt{}, false
}
