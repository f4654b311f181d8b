package postgres

import (
	"context"
	"errors"
	"io"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// unavailableMessage is what a client is told while the database cannot be reached or will not
// take writes: a failover in progress, a restart, a network partition. It is a 503 with
// Retry-After, not a 500, since nothing is wrong with the request and the same request
// succeeds once the nodes reach the (new) primary.
const unavailableMessage = "the service's database cannot be reached; retry shortly"

// unreachable says whether err means the database could not be reached or would not take the
// statement for a while, rather than that the statement itself failed.
func unreachable(err error) bool {
	var (
		connect *pgconn.ConnectError
		netErr  net.Error
		pgErr   *pgconn.PgError
	)
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false // the caller's deadline or cancellation, not the database's absence
	case errors.As(err, &connect), errors.As(err, &netErr), errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF):
		return true
	case errors.As(err, &pgErr):
		switch {
		case len(pgErr.Code) == 5 && pgErr.Code[:2] == "08": // connection exception
			return true
		case pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03": // shutdown, crash, cannot connect now (recovery)
			return true
		case pgErr.Code == "25006": // read_only_sql_transaction: a standby, before the URL's next host is tried
			return true
		}
	}
	return false
}

// failure is the boundary's error for a storage failure: 503 unavailable (with Retry-After)
// when the database could not be reached, an internal error otherwise. The cause, with the
// URL's password removed, is logged; clients see neither.
func (s *Store) failure(err error) error {
	if unreachable(err) {
		return &messages.Error{Code: messages.CodeUnavailable, Message: unavailableMessage,
			RetryAfter: time.Second, Cause: s.secret.error(err)}
	}
	return persistence.StoreInternal(s.secret.error(err))
}

// storeErr is a read's storage error as the boundary gives it: unavailable when the database
// could not be reached (see failure), else the error with the URL's password removed.
func (s *Store) storeErr(err error) error {
	if unreachable(err) {
		return s.failure(err)
	}
	return s.secret.error(err)
}
