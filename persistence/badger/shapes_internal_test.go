package badger

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/persistence"
)

// shapeCred is a credential of user name in community "shop" with an id of idLen bytes (made
// unique by n) and transports.
func shapeCred(name string, n, idLen int, transports ...string) persistence.Credential {
	id := fmt.Appendf(nil, "%s-%d-", name, n)
	for len(id) < idLen {
		id = append(id, 'x')
	}
	return persistence.Credential{ID: id[:idLen], CommunityID: "shop", Username: name, UserHandle: []byte("h-" + name),
		PublicKey: []byte{1}, Transports: transports}
}

// openShop opens a store in dir with the community "shop".
func openShop(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := persistence.ApplyOne(ctx, s, persistence.PutCommunity{Create: true, Community: persistence.Community{ID: "shop", TenantID: "acme", Name: "shop",
		RPIDs: []string{"example.com"}, Origins: []string{"https://example.com"}, UserVerification: persistence.VerificationPreferred}}); err != nil {
		t.Fatal(err)
	}
	return s
}

// wantCommonShape checks shop's most common shape after step (none: ErrNotFound).
func wantCommonShape(t *testing.T, s *Store, step string, shape ...persistence.CredentialShape) {
	t.Helper()
	got, err := s.CommonShape(ctx, "shop")
	if len(shape) == 0 {
		if !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("%s: CommonShape = %v, %v; want ErrNotFound", step, got, err)
		}
		return
	}
	if err != nil || !reflect.DeepEqual(got, shape) {
		t.Fatalf("%s: CommonShape = %+v, %v; want %+v", step, got, err, shape)
	}
}

// TestCommonShape: the shape tally follows registrations and imports, survives a restart, and
// is rebuilt whole by Open for a store that has none (one written by an earlier version).
func TestCommonShape(t *testing.T) {
	dir := t.TempDir()
	s := openShop(t, dir)
	defer func() { s.Close() }()
	var err error
	phone := persistence.CredentialShape{IDLength: 16, Transports: []string{"hybrid", "internal"}}
	key := persistence.CredentialShape{IDLength: 64, Transports: []string{"usb"}}
	add := func(c persistence.Credential) {
		t.Helper()
		if _, err := persistence.ApplyOne(ctx, s, persistence.AddCredential{Credential: c}); err != nil {
			t.Fatal(err)
		}
	}
	want := func(step string, shape ...persistence.CredentialShape) {
		t.Helper()
		wantCommonShape(t, s, step, shape...)
	}

	want("no passkey yet")
	add(shapeCred("a", 0, 64, "usb"))
	want("one user with a security key", key)
	add(shapeCred("b", 0, 16, "hybrid", "internal"))
	add(shapeCred("c", 0, 16, "hybrid", "internal"))
	want("two users with a phone passkey overtake one with a key", phone)
	add(shapeCred("b", 1, 64, "usb"))
	add(shapeCred("c", 1, 64, "usb"))
	add(shapeCred("d", 0, 64, "usb"))
	// a: key; b, c: phone and key; d: key. The shape's passkeys come in a canonical order.
	want("users with a phone and a key", phone, key)
	add(shapeCred("e", 0, 64, "usb"))
	want("three users with a key", key)

	if err := s.Import(ctx, []persistence.User{{CommunityID: "shop", Username: "f", Handle: []byte("h-f")}, {CommunityID: "shop", Username: "g", Handle: []byte("h-g")},
		{CommunityID: "shop", Username: "h", Handle: []byte("h-h")}, {CommunityID: "shop", Username: "i", Handle: []byte("h-i")}},
		[]persistence.Credential{shapeCred("f", 0, 16, "hybrid", "internal"), shapeCred("g", 0, 16, "hybrid", "internal"),
			shapeCred("h", 0, 16, "hybrid", "internal"), shapeCred("h", 1, 64, "usb"), shapeCred("i", 0, 16, "hybrid", "internal")}); err != nil {
		t.Fatal(err)
	}
	// a, d, e: key; f, g, i: phone; b, c, h: phone and key. Three of each: the first to reach
	// three stays.
	want("after an import", key)
	add(shapeCred("j", 0, 16, "hybrid", "internal"))
	want("the import counted", phone)

	reopen := func() {
		t.Helper()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if s, err = Open(dir, zap.NewNop()); err != nil {
			t.Fatal(err)
		}
	}
	reopen()
	want("after a restart", phone)

	// A store of an earlier version has no tally: Open builds it from the passkeys.
	for _, prefix := range []string{"ds/", "dm/", "m/"} {
		if err := s.db.DropPrefix([]byte(prefix)); err != nil {
			t.Fatal(err)
		}
	}
	want("tally dropped")
	reopen()
	want("rebuilt by Open", phone)
	add(shapeCred("a", 1, 16, "hybrid", "internal"))
	add(shapeCred("d", 1, 16, "hybrid", "internal"))
	// a, d: phone and key (5); f, g, i, j: phone (4); e: key.
	want("the rebuilt tally counts on", phone, key)
}
