// Package messages is the vocabulary of webauthnd: the plain values that HTTP handlers send to the
// ceremony engine and the answers they get back, plus the one error type of the service.
//
// It owns no behaviour and imports nothing but the standard library, so that every other package
// (httpapi, actors, persistence, bench) can speak it without depending on each other.
package messages
