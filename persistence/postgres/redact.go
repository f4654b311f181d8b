package postgres

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"

	"github.com/webauthnd/webauthnd/messages"
)

// redactor keeps the database password out of errors. pgx does not put the password in the
// errors it returns once a connection string is parsed, but a server, a proxy or a driver
// message that quotes one would otherwise carry it to a log: every error the store returns
// passes through error, which replaces each form of the password with xxxxx.
type redactor struct {
	forms []string
}

func newRedactor(passwords ...string) redactor {
	var r redactor
	for _, p := range passwords {
		if p == "" {
			continue
		}
		userinfo := strings.TrimSuffix((&url.URL{User: url.UserPassword("u", p)}).String()[len("//u:"):], "@")
		for _, f := range []string{p, url.QueryEscape(p), url.PathEscape(p), userinfo} {
			if f != "" && !slices.Contains(r.forms, f) {
				r.forms = append(r.forms, f)
			}
		}
	}
	return r
}

func (r redactor) text(s string) string {
	for _, f := range r.forms {
		s = strings.ReplaceAll(s, f, "xxxxx")
	}
	return s
}

func (r redactor) leaks(s string) bool {
	for _, f := range r.forms {
		if strings.Contains(s, f) {
			return true
		}
	}
	return false
}

// error returns err, or a copy of it without the password when its text or its causes' carry
// one. ErrNotFound, refusals and context errors pass through as they are (but for a refusal's
// cause, which is redacted too).
func (r redactor) error(err error) error {
	if err == nil || len(r.forms) == 0 || errors.Is(err, errNotFound) {
		return err
	}
	var me *messages.Error
	if errors.As(err, &me) && me == err {
		if me.Cause == nil || !r.chainLeaks(me.Cause) {
			return err
		}
		out := *me
		out.Cause = r.error(me.Cause)
		return &out
	}
	if !r.chainLeaks(err) {
		return err
	}
	return &redactedError{msg: r.text(err.Error()), cause: contextCause(err)}
}

// chainLeaks says whether err's text, or that of any error it wraps, carries the password.
func (r redactor) chainLeaks(err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if r.leaks(e.Error()) {
			return true
		}
	}
	return false
}

// redactedError is an error whose text had the password: it keeps the text without it, and of
// its causes only a context error, so that callers can still tell a deadline.
type redactedError struct {
	msg   string
	cause error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.cause }

func contextCause(err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return context.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return context.Canceled
	}
	return nil
}
