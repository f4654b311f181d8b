package actors

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// Passkeys lists a user's passkeys with their links to DIDs. It reads the store in the
// caller's goroutine, under ctx: no ceremony is involved. An unknown user has none (Found
// false).
func (e *Engine) Passkeys(ctx context.Context, m messages.ListPasskeys) (messages.UserPasskeys, error) {
	u, err := e.deps.store.User(ctx, m.CommunityID, m.Username)
	if errors.Is(err, persistence.ErrNotFound) {
		return messages.UserPasskeys{}, nil
	} else if err != nil {
		return messages.UserPasskeys{}, messages.Wrap(messages.CodeInternal, "internal error", err)
	}
	creds, err := e.deps.store.CredentialsOf(ctx, m.CommunityID, m.Username)
	if err != nil {
		return messages.UserPasskeys{}, messages.Wrap(messages.CodeInternal, "internal error", err)
	}
	out := messages.UserPasskeys{Found: true, UserHandle: u.Handle, DisplayName: u.DisplayName}
	for _, c := range creds {
		model, err := e.deps.models.of(ctx, m.CommunityID, c.AAGUID)
		if err != nil {
			return messages.UserPasskeys{}, messages.Wrap(messages.CodeInternal, "internal error", err)
		}
		out.Passkeys = append(out.Passkeys, messages.Passkey{
			AuthenticatorName:  model.name,
			CredentialID:       c.ID,
			FidoKeyHash:        hex.EncodeToString(persistence.FidoKeyHash(c.ID)),
			DID:                c.DID,
			AAGUID:             formatAAGUID(c.AAGUID),
			AttestationFormat:  c.AttestationFormat,
			AttestationTrusted: c.AttestationTrusted,
			BackupEligible:     c.BackupEligible,
			BackupState:        c.BackupState,
			SignCount:          c.SignCount,
			Created:            c.Created,
			LastUsed:           c.LastUsed,
		})
	}
	return out, nil
}

// Link links a user's passkey to a DID, through the writer; once linked, the passkey's
// signature tokens carry the DID.
func (e *Engine) Link(ctx context.Context, m messages.Link) error {
	hash, err := fidoKeyHashBytes(m.FidoKeyHash)
	if err != nil {
		return err
	}
	_, err = e.Write(ctx, persistence.LinkCredential{CommunityID: m.CommunityID, Username: m.Username, FidoKeyHash: hash, DID: m.DID})
	return err
}

// Unlink removes the link of a user's passkey to a DID, through the writer.
func (e *Engine) Unlink(ctx context.Context, m messages.Link) error {
	hash, err := fidoKeyHashBytes(m.FidoKeyHash)
	if err != nil {
		return err
	}
	_, err = e.Write(ctx, persistence.UnlinkCredential{CommunityID: m.CommunityID, Username: m.Username, FidoKeyHash: hash, DID: m.DID})
	return err
}

// Unregister removes the passkeys an identifier names (a fidoKeyHash, or a DID: every passkey
// linked to it), through the writer, and returns how many it removed. A sign-in of a removed
// passkey that has not committed yet fails: its counter write finds no credential.
func (e *Engine) Unregister(ctx context.Context, m messages.Unregister) (int, error) {
	op := persistence.RemoveCredentials{CommunityID: m.CommunityID, Username: m.Username}
	if strings.HasPrefix(m.Identifier, "did:") {
		op.DID = m.Identifier
	} else {
		hash, err := fidoKeyHashBytes(m.Identifier)
		if err != nil {
			return 0, messages.Errorf(messages.CodeInvalidRequest, "the identifier is a fidoKeyHash (64 lowercase hex digits) or a DID (did:…)")
		}
		op.FidoKeyHash = hash
	}
	n, err := e.Write(ctx, op)
	if err != nil {
		return 0, err
	}
	return n.(int), nil
}

// fidoKeyHashBytes reads a fidoKeyHash: 64 lowercase hex digits.
func fidoKeyHashBytes(s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 || strings.ToLower(s) != s {
		return nil, messages.Errorf(messages.CodeInvalidRequest, "a fidoKeyHash is 64 lowercase hex digits")
	}
	return b, nil
}
