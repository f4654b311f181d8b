package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// txn is the transaction of one batch on one connection. It sends statements lazily: each waits
// in pending until an op needs an answer, and then all of them go out as one pipelined batch,
// one round trip. The statements that need no answer of their own (BEGIN, SAVEPOINT, RELEASE,
// ROLLBACK TO, and the single-statement ops of Apply's first attempt) therefore cost no round
// trip: a batch of one RecordSignIn is BEGIN, the UPDATE and COMMIT in a single round trip.
//
// A statement that fails makes the server skip the rest of its flush (the transaction is then
// in the failed state until a ROLLBACK TO SAVEPOINT or the end). flush reports which op the
// failed statement belonged to, so that Apply can tell an op's own failure (rolled back to the
// op's savepoint) from one that breaks the whole attempt.
type txn struct {
	conn    *pgx.Conn
	pending []stmt
	// op is the index of the op whose statements are being queued; -1 for Apply's own.
	op int
	// opFailed is set when a statement of op failed; broken holds the failure of a statement
	// of another op or of Apply's own, which ends the attempt.
	opFailed bool
	broken   error
}

// stmt is one statement waiting to be sent.
type stmt struct {
	sql  string
	args []any
	// read reads the statement's rows (and may look at rows.CommandTag once they are read);
	// nil when only its success matters.
	read func(pgx.Rows) error
	op   int
}

// flushError is the failure of a statement: of the op with index op, or (op -1) of Apply's
// own statements.
type flushError struct {
	op  int
	sql string
	err error
}

func (e *flushError) Error() string { return fmt.Sprintf("%s: %v", firstLine(e.sql), e.err) }
func (e *flushError) Unwrap() error { return e.err }

// queue adds a statement of the current op, sent with the next flush.
func (t *txn) queue(read func(pgx.Rows) error, sql string, args ...any) {
	t.pending = append(t.pending, stmt{sql: sql, args: args, read: read, op: t.op})
}

// control adds a statement of Apply's own (transaction control).
func (t *txn) control(sql string, read func(pgx.Rows) error) {
	t.pending = append(t.pending, stmt{sql: sql, read: read, op: -1})
}

// flush sends every pending statement in one round trip and reads their answers in order. It
// returns the first failure: a *flushError for a statement the server refused (the statements
// after it were skipped), or the error of a read function (the others are still read).
func (t *txn) flush(ctx context.Context) error {
	if len(t.pending) == 0 {
		return nil
	}
	sent := t.pending
	t.pending = nil
	b := &pgx.Batch{}
	for _, st := range sent {
		b.Queue(st.sql, st.args...)
	}
	br := t.conn.SendBatch(ctx, b)
	var first error
	for _, st := range sent {
		rows, err := br.Query()
		if err != nil {
			first = t.failed(first, st, err)
			break
		}
		var rerr error
		if st.read != nil {
			rerr = st.read(rows)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			first = t.failed(first, st, err)
			break
		}
		if rerr != nil && first == nil {
			first = rerr
		}
	}
	if err := br.Close(); err != nil && first == nil {
		first = t.failed(first, stmt{sql: "the batch", op: -1}, err)
	}
	return first
}

// failed records that the server refused st, and returns the first failure of the flush.
func (t *txn) failed(first error, st stmt, err error) error {
	fe := &flushError{op: st.op, sql: st.sql, err: err}
	if st.op == t.op && st.op >= 0 {
		t.opFailed = true
	} else if t.broken == nil {
		t.broken = fe
	}
	if first == nil {
		return fe
	}
	return first
}

// exec queues a statement of the current op and flushes: its rows affected.
func (t *txn) exec(ctx context.Context, sql string, args ...any) (int64, error) {
	var n int64
	t.queue(func(rows pgx.Rows) error {
		for rows.Next() {
		}
		n = rows.CommandTag().RowsAffected()
		return rows.Err()
	}, sql, args...)
	return n, t.flush(ctx)
}

// queryRow queues a statement of the current op and flushes, scanning its first row into dest:
// false when it has none.
func (t *txn) queryRow(ctx context.Context, sql string, args []any, dest ...any) (bool, error) {
	var found bool
	t.queue(scanFirst(&found, dest...), sql, args...)
	return found, t.flush(ctx)
}

// query queues a statement of the current op and flushes, calling each for every row.
func (t *txn) query(ctx context.Context, each func(pgx.Rows) error, sql string, args ...any) error {
	t.queue(forEach(each), sql, args...)
	return t.flush(ctx)
}

// scanFirst reads the first row into dest and sets found.
func scanFirst(found *bool, dest ...any) func(pgx.Rows) error {
	return func(rows pgx.Rows) error {
		if !rows.Next() {
			return rows.Err()
		}
		*found = true
		return rows.Scan(dest...)
	}
}

// forEach calls each for every row.
func forEach(each func(pgx.Rows) error) func(pgx.Rows) error {
	return func(rows pgx.Rows) error {
		for rows.Next() {
			if err := each(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	}
}

func firstLine(sql string) string {
	for i, r := range sql {
		if r == '\n' {
			return sql[:i] + " ..."
		}
	}
	return sql
}
