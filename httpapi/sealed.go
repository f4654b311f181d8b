package httpapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/messages"
)

// Replays remembers the request ids of sealed requests, durably, until they expire.
type Replays interface {
	// Remember records uuid from caller until the given time; a uuid already recorded for that
	// caller is a *messages.Error with CodeRequestReplayed.
	Remember(ctx context.Context, caller []byte, uuid string, until time.Time) error
}

// clockSkew is added to a replay record's life beyond ts + allowed_time_span.
const clockSkew = 5 * time.Second

// sealedRequestID is the plaintext of the requestid header of a sealed request. Method and Path
// are optional: when a client sends them, the request must be that method on that path, so that
// its captured headers cannot be replayed against another route.
type sealedRequestID struct {
	TS     *int64 `json:"ts"`
	AppID  string `json:"appid"`
	UUID   string `json:"uuid"`
	Method string `json:"method"`
	Path   string `json:"path"`
}

// boundTo refuses a request whose method or path differs from those its requestid names.
func (id sealedRequestID) boundTo(r *http.Request) error {
	if id.Method != "" && !strings.EqualFold(id.Method, r.Method) {
		return messages.Errorf(messages.CodeRequestInvalid, "the requestid was sealed for another method")
	}
	if id.Path != "" && id.Path != r.URL.Path {
		// The path as sent (r.URL.Path is percent-encoded here: see routeOnEscapedPath), or
		// that path unescaped once. Not when the request encodes a '%' (%25): unescaping it once
		// would turn a parameter a%252Fb, which the handler reads as a%2Fb, into a%2Fb, so
		// that a requestid sealed for the path of user a/b would pass for user a%2Fb.
		unescaped, err := url.PathUnescape(r.URL.Path)
		if err != nil || id.Path != unescaped || strings.Contains(r.URL.Path, "%25") {
			return messages.Errorf(messages.CodeRequestInvalid, "the requestid was sealed for another path")
		}
	}
	return nil
}

// sealed serves a u1 handler behind BlockID's envelope: the caller's publickey header, an
// encrypted licensekey and requestid, and a body {"data": token} (none on GET, PUT and DELETE). The shared AES-256-GCM key is
// the x-coordinate of ECDH(service key, caller key). A success is answered {"data": token} whose
// plaintext is the u1 body; an error is plain JSON (the caller may not hold the key).
//
// Nothing is written for a caller that has not proved a license: the license is checked
// (exists, enabled, not expired) before the replay record, a synced write, is made.
func sealed(keys *Keyring, lc licenseChecker, replays Replays, span time.Duration, now func() time.Time, log *zap.Logger, next http.Handler) http.Handler {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		raw, err := base64.StdEncoding.Strict().DecodeString(r.Header.Get("publickey"))
		if err != nil || len(raw) == 0 {
			return messages.Errorf(messages.CodeEnvelopeInvalid, "the publickey header must be the standard base64 of your public key")
		}
		caller, err := callerPoint(raw)
		if err != nil {
			return messages.Wrap(messages.CodeEnvelopeInvalid, "the publickey header must be 64 bytes X‖Y or 65 bytes 0x04‖X‖Y", err)
		}
		at := now()
		var (
			shared, license []byte
			offCurve        error // why the point is not on a key's curve, while it is on none
		)
		for i, k := range keys.candidates(at) {
			// After a change of curves, the previous key is on another curve than the current
			// one: a point off the current curve may be a client of the previous key.
			s, err := k.sharedKey(caller)
			if err != nil {
				if i == 0 {
					offCurve = messages.Wrap(messages.CodeEnvelopeInvalid, "the publickey header is not a point on the service's curve ("+k.Curve()+")", err)
				}
				continue
			}
			offCurve = nil
			if l, err := open(s, r.Header.Get("licensekey")); err == nil {
				shared, license = s, l
				break
			}
		}
		if offCurve != nil {
			return offCurve
		}
		if shared == nil {
			return messages.Errorf(messages.CodeLicenseInvalid, "the licensekey header does not decrypt with the key shared with your publickey")
		}
		if _, err := lc.authenticate(r.Context(), string(license)); err != nil {
			return err
		}
		rawID := r.Header.Get("requestid")
		if rawID == "" {
			return messages.Errorf(messages.CodeRequestInvalid, "the requestid header is missing")
		}
		plainID, err := open(shared, rawID)
		if err != nil {
			return messages.Errorf(messages.CodeRequestInvalid, "the requestid header does not decrypt")
		}
		var id sealedRequestID
		if err := unmarshalStrict(plainID, &id); err != nil || id.TS == nil || id.UUID == "" || len(id.UUID) > 128 {
			return messages.Errorf(messages.CodeRequestInvalid, `the requestid must be JSON {"ts": <unix seconds>, "appid": "…", "uuid": "…"}`)
		}
		if err := id.boundTo(r); err != nil {
			return err
		}
		stamped := time.Unix(*id.TS, 0)
		if d := at.Sub(stamped); d > span || d < -span {
			return messages.Errorf(messages.CodeRequestStale, "the request's ts is outside the allowed time span; check your clock")
		}
		// The record lives from ts, not from arrival: a request stamped in the future cannot
		// outlive its record.
		if err := replays.Remember(r.Context(), caller, id.UUID, stamped.Add(span+clockSkew)); err != nil {
			return err
		}
		var plain []byte
		if r.Method == http.MethodPost {
			var body struct {
				Data string `json:"data"`
			}
			if err := decode(r, &body); err != nil {
				return err
			}
			if plain, err = open(shared, body.Data); err != nil {
				return messages.Errorf(messages.CodeEnvelopeInvalid, "the body's data does not decrypt with the key shared with your publickey")
			}
		} else if err := readNoBody(r); err != nil { // GET, PUT and DELETE carry everything in the path
			return err
		}

		inner := r.Clone(r.Context())
		inner.Header.Set("licensekey", string(license))
		inner.Header.Set("requestid", id.UUID)
		inner.Body = io.NopCloser(bytes.NewReader(plain))
		inner.ContentLength = int64(len(plain))
		rec := &bufferedResponse{header: http.Header{}, status: http.StatusOK}
		next.ServeHTTP(rec, inner)

		setCode(w, messages.Code(rec.code))
		if rec.status != http.StatusOK {
			// An error is plain JSON, with the headers that tell a client what to do next.
			for _, k := range []string{"Content-Type", "Cache-Control", "Retry-After"} {
				if v := rec.header.Values(k); len(v) > 0 {
					w.Header()[k] = v
				}
			}
			w.WriteHeader(rec.status)
			_, _ = w.Write(rec.body.Bytes())
			return nil
		}
		// A success travels only inside the envelope: no header of the u1 answer (sessionInfo
		// among them) is copied out in plain text.
		token, err := seal(shared, bytes.TrimSpace(rec.body.Bytes()))
		if err != nil {
			return err
		}
		encode(w, http.StatusOK, map[string]string{"data": token})
		return nil
	})
}

// bufferedResponse keeps what a wrapped handler writes, so the envelope can seal it.
type bufferedResponse struct {
	header http.Header
	status int
	code   string
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header         { return b.header }
func (b *bufferedResponse) WriteHeader(status int)      { b.status = status }
func (b *bufferedResponse) Write(p []byte) (int, error) { return b.body.Write(p) }
func (b *bufferedResponse) setCode(code string)         { b.code = code }
