package storetest

import (
	"testing"
	"time"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// wantWriteTime fails the test unless at is a time the store set when it wrote: not zero, in
// UTC, within the last minute.
func wantWriteTime(t *testing.T, what string, at time.Time) {
	t.Helper()
	if now := time.Now(); at.IsZero() || at.Location() != time.UTC || at.After(now) || at.Before(now.Add(-time.Minute)) {
		t.Fatalf("%s = %v, want the time of the write, in UTC", what, at)
	}
}

// tenant reads a tenant and fails the test when it cannot.
func tenant(t *testing.T, s persistence.Store, id string) persistence.Tenant {
	t.Helper()
	tn, err := s.Tenant(t.Context(), id)
	if err != nil {
		t.Fatalf("Tenant(%s): %s", id, describe(err))
	}
	return tn
}

// wantTenantOfHost fails the test unless host names tenant id ("" for none).
func wantTenantOfHost(t *testing.T, s persistence.Store, host, id string) {
	t.Helper()
	tn, err := s.TenantByDNS(t.Context(), host)
	if id == "" {
		wantNotFound(t, "TenantByDNS("+host+")", err)
		return
	}
	if err != nil || tn.ID != id {
		t.Fatalf("TenantByDNS(%s) = %+v, %s; want tenant %s", host, tn, describe(err), id)
	}
}

// wantNoTenant fails the test unless tenant id does not exist.
func wantNoTenant(t *testing.T, s persistence.Store, id string) {
	t.Helper()
	_, err := s.Tenant(t.Context(), id)
	wantNotFound(t, "Tenant("+id+")", err)
}

// wantNoCommunity fails the test unless community id does not exist.
func wantNoCommunity(t *testing.T, s persistence.Store, id string) {
	t.Helper()
	_, err := s.Community(t.Context(), id)
	wantNotFound(t, "Community("+id+")", err)
}

// wantCommunity fails the test unless community want.ID is stored as want.
func wantCommunity(t *testing.T, s persistence.Store, want persistence.Community) {
	t.Helper()
	got, err := s.Community(t.Context(), want.ID)
	if err != nil {
		t.Fatalf("Community(%s): %s", want.ID, describe(err))
	}
	wantSame(t, "Community("+want.ID+")", got, want)
}

func putTenant(id, name string, created time.Time, dns ...string) persistence.PutTenant {
	return persistence.PutTenant{Tenant: persistence.Tenant{ID: id, Name: name, Created: created}, DNS: dns}
}

func testPutTenant(t *testing.T, open Opener) {
	cases := []opCase{
		{
			name: "creates the tenant with its name and Created",
			op:   putTenant("acme", "ACME", t0),
			after: func(t *testing.T, s persistence.Store, v any) {
				want := persistence.Tenant{ID: "acme", Name: "ACME", Created: t0}
				wantSame(t, "result", v, want)
				wantSame(t, "Tenant(acme)", tenant(t, s, "acme"), want)
			},
		},
		{
			name: "a zero Created becomes the time of the write",
			op:   putTenant("acme", "ACME", time.Time{}),
			after: func(t *testing.T, s persistence.Store, v any) {
				wantWriteTime(t, "Created", v.(persistence.Tenant).Created)
				wantSame(t, "Tenant(acme)", tenant(t, s, "acme"), v)
			},
		},
		{
			name:  "a tenant that exists keeps its name and Created",
			setup: []persistence.Op{putTenant("acme", "ACME", t0)},
			op:    putTenant("acme", "Other", t1),
			after: func(t *testing.T, s persistence.Store, v any) {
				want := persistence.Tenant{ID: "acme", Name: "ACME", Created: t0}
				wantSame(t, "result", v, want)
				wantSame(t, "Tenant(acme)", tenant(t, s, "acme"), want)
			},
		},
		{
			name: "hosts are stored in lower case without a port, each once",
			op:   putTenant("acme", "ACME", t0, "Login.Example.COM:8443", "acme.example", "login.example.com"),
			after: func(t *testing.T, s persistence.Store, v any) {
				want := persistence.Tenant{ID: "acme", Name: "ACME", Created: t0, DNS: []string{"login.example.com", "acme.example"}}
				wantSame(t, "result", v, want)
				wantSame(t, "Tenant(acme)", tenant(t, s, "acme"), want)
			},
		},
		{
			name: "host names in the tenant record are ignored: only DNS adds hosts",
			op:   persistence.PutTenant{Tenant: persistence.Tenant{ID: "acme", DNS: []string{"sneaky.example"}}},
			after: func(t *testing.T, s persistence.Store, v any) {
				if dns := v.(persistence.Tenant).DNS; len(dns) != 0 {
					t.Fatalf("DNS = %q, want none", dns)
				}
				wantTenantOfHost(t, s, "sneaky.example", "")
			},
		},
		{
			name:  "hosts added to an existing tenant come after its hosts, none twice",
			setup: []persistence.Op{putTenant("acme", "ACME", t0, "a.example")},
			op:    putTenant("acme", "Other", time.Time{}, "A.example", "b.example"),
			after: func(t *testing.T, s persistence.Store, v any) {
				want := persistence.Tenant{ID: "acme", Name: "ACME", Created: t0, DNS: []string{"a.example", "b.example"}}
				wantSame(t, "result", v, want)
				wantSame(t, "Tenant(acme)", tenant(t, s, "acme"), want)
				wantTenantOfHost(t, s, "b.example", "acme")
			},
		},
		{
			name:  "a new tenant with a host of another tenant is refused and claims none of its hosts",
			setup: []persistence.Op{putTenant("acme", "ACME", t0, "taken.example")},
			op:    putTenant("newco", "NewCo", t0, "free.example", "TAKEN.example"),
			want:  persistence.HostTaken("taken.example"),
			after: func(t *testing.T, s persistence.Store, _ any) {
				wantNoTenant(t, s, "newco")
				wantTenantOfHost(t, s, "free.example", "")
				wantTenantOfHost(t, s, "taken.example", "acme")
				mustApply(t, s, putTenant("globex", "Globex", t0, "free.example"))
				wantTenantOfHost(t, s, "free.example", "globex")
			},
		},
		{
			name:  "an existing tenant asking for a host of another tenant is refused and keeps its hosts",
			setup: []persistence.Op{putTenant("acme", "ACME", t0, "login.example.com"), putTenant("globex", "Globex", t0, "globex.example")},
			op:    putTenant("globex", "Globex", t0, "new.globex.example", "LOGIN.example.com"),
			want:  persistence.HostTaken("login.example.com"),
			after: func(t *testing.T, s persistence.Store, _ any) {
				wantSame(t, "Tenant(globex)", tenant(t, s, "globex"),
					persistence.Tenant{ID: "globex", Name: "Globex", Created: t0, DNS: []string{"globex.example"}})
				wantTenantOfHost(t, s, "login.example.com", "acme")
				wantTenantOfHost(t, s, "new.globex.example", "")
			},
		},
	}
	for _, host := range []string{"", "a/b", "//example.com", "user@example.com", "a b.example", "a\x00b", "[::1]", "example.com:abc", "https://example.com"} {
		_, refusal := persistence.CanonicalHost(host)
		cases = append(cases, opCase{
			name: "a host that is not a plain host name is refused: " + host,
			op:   putTenant("acme", "ACME", t0, "ok.example", host),
			want: refusal,
			after: func(t *testing.T, s persistence.Store, _ any) {
				wantNoTenant(t, s, "acme")
				wantTenantOfHost(t, s, "ok.example", "")
			},
		})
	}
	runOps(t, open, nil, cases)
}

func testTenantReads(t *testing.T, open Opener) {
	acme := persistence.Tenant{ID: "acme", Name: "ACME", Created: t0, DNS: []string{"login.example.com", "acme.example"}}
	seed := func(t *testing.T, s persistence.Store) {
		mustApply(t, s, putTenant("acme", "ACME", t0, "login.example.com", "acme.example"))
		mustApply(t, s, putTenant("globex", "Globex", t1))
	}
	byDNS := func(host string) func(t *testing.T, s persistence.Store) (any, error) {
		return func(t *testing.T, s persistence.Store) (any, error) { return s.TenantByDNS(t.Context(), host) }
	}
	runReads(t, open, seed, []readCase{
		{name: "Tenant by id", read: func(t *testing.T, s persistence.Store) (any, error) { return s.Tenant(t.Context(), "acme") }, want: acme},
		{name: "Tenant of an unknown id is not found", read: func(t *testing.T, s persistence.Store) (any, error) { return s.Tenant(t.Context(), "nobody") },
			wantErr: persistence.ErrNotFound},
		{name: "TenantByDNS of a host", read: byDNS("login.example.com"), want: acme},
		{name: "TenantByDNS in any case", read: byDNS("LOGIN.Example.com"), want: acme},
		{name: "TenantByDNS with a port", read: byDNS("login.example.com:443"), want: acme},
		{name: "TenantByDNS in any case with a port", read: byDNS("Acme.Example:8443"), want: acme},
		{name: "TenantByDNS of a parent domain is not found", read: byDNS("example.com"), wantErr: persistence.ErrNotFound},
		{name: "TenantByDNS of an unknown host is not found", read: byDNS("other.example"), wantErr: persistence.ErrNotFound},
		{name: "TenantByDNS of nothing is not found", read: byDNS(""), wantErr: persistence.ErrNotFound},
		{name: "TenantByDNS of what is no host name is not found", read: byDNS("a/b"), wantErr: persistence.ErrNotFound},
		{name: "TenantByDNS of a URL is not found", read: byDNS("https://login.example.com"), wantErr: persistence.ErrNotFound},
	})
}

func testPutCommunity(t *testing.T, open Opener) {
	named := func(id, name string) persistence.Community {
		c := community(id)
		c.Name = name
		return c
	}
	cases := []opCase{
		{
			name: "creates the community at the time of the write, and its tenant",
			op:   persistence.PutCommunity{Community: func() persistence.Community { c := community("shop"); c.Created, c.Updated = t0, t0; return c }(), Create: true},
			after: func(t *testing.T, s persistence.Store, v any) {
				got := v.(persistence.Community)
				wantWriteTime(t, "Created", got.Created)
				if !got.Updated.Equal(got.Created) {
					t.Fatalf("Updated = %v, want Created %v", got.Updated, got.Created)
				}
				want := community("shop")
				want.Created, want.Updated = got.Created, got.Updated
				wantSame(t, "result", got, want)
				wantCommunity(t, s, want)
				tn := tenant(t, s, "acme")
				if tn.Name != "acme" || len(tn.DNS) != 0 {
					t.Fatalf("Tenant(acme) = %+v, want the tenant created with the community, named by its id", tn)
				}
				wantWriteTime(t, "the tenant's Created", tn.Created)
			},
		},
		{
			name:  "a community of an existing tenant keeps the tenant",
			setup: []persistence.Op{putTenant("acme", "ACME", t0, "acme.example")},
			op:    persistence.PutCommunity{Community: community("shop"), Create: true},
			after: func(t *testing.T, s persistence.Store, _ any) {
				wantSame(t, "Tenant(acme)", tenant(t, s, "acme"), persistence.Tenant{ID: "acme", Name: "ACME", Created: t0, DNS: []string{"acme.example"}})
			},
		},
		{
			name:  "creating one that exists is a conflict and keeps the stored one",
			setup: []persistence.Op{persistence.PutCommunity{Community: community("shop"), Create: true}},
			op:    persistence.PutCommunity{Community: named("shop", "Replacement"), Create: true},
			want:  persistence.CommunityExists("shop"),
			after: func(t *testing.T, s persistence.Store, _ any) {
				if c, err := s.Community(t.Context(), "shop"); err != nil || c.Name != "Community shop" {
					t.Fatalf("Community(shop) = %+v, %s; want the first", c, describe(err))
				}
			},
		},
		{
			name: "replacing one that does not exist is not found and creates no tenant",
			op:   persistence.PutCommunity{Community: func() persistence.Community { c := community("shop"); c.TenantID = "newtenant"; return c }()},
			want: persistence.CommunityMissing("shop"),
			after: func(t *testing.T, s persistence.Store, _ any) {
				wantNoCommunity(t, s, "shop")
				wantNoTenant(t, s, "newtenant")
			},
		},
		{
			name: "an invalid community is refused as Check refuses it, and nothing is written",
			op: persistence.PutCommunity{Create: true,
				Community: func() persistence.Community {
					c := community("shop")
					c.Origins = []string{"http://example.com"}
					return c
				}()},
			want: byCheck,
			after: func(t *testing.T, s persistence.Store, _ any) {
				wantNoCommunity(t, s, "shop")
				wantNoTenant(t, s, "acme")
			},
		},
		{
			name: "TenantDNS adds hosts to the community's tenant",
			op:   persistence.PutCommunity{Community: community("shop"), Create: true, TenantDNS: []string{"Shop.Example"}},
			after: func(t *testing.T, s persistence.Store, _ any) {
				if dns := tenant(t, s, "acme").DNS; !same(dns, []string{"shop.example"}) {
					t.Fatalf("the tenant's DNS = %q, want [shop.example]", dns)
				}
				wantTenantOfHost(t, s, "shop.example", "acme")
			},
		},
		{
			name:  "a TenantDNS host of another tenant refuses the community, which creates no tenant",
			setup: []persistence.Op{putTenant("globex", "Globex", t0, "taken.example")},
			op:    persistence.PutCommunity{Community: community("shop"), Create: true, TenantDNS: []string{"free.example", "taken.example"}},
			want:  persistence.HostTaken("taken.example"),
			after: func(t *testing.T, s persistence.Store, _ any) {
				wantNoCommunity(t, s, "shop")
				wantNoTenant(t, s, "acme")
				wantTenantOfHost(t, s, "free.example", "")
			},
		},
		{
			name: "an id that is only like the reserved one can be created",
			op:   persistence.PutCommunity{Community: community("anything"), Create: true},
		},
	}
	for _, id := range []string{"any", "ANY", "Any"} {
		cases = append(cases, opCase{
			name: "the reserved id " + id + " cannot be created",
			op:   persistence.PutCommunity{Community: community(id), Create: true},
			want: byCheck,
			after: func(t *testing.T, s persistence.Store, _ any) {
				wantNoCommunity(t, s, id)
			},
		})
	}
	runOps(t, open, nil, cases)

	t.Run("replacing keeps Created, moves Updated and changes the rest", func(t *testing.T) {
		s := open(t)
		first := seedCommunity(t, s, "shop")
		c := named("shop", "Renamed")
		c.Created = t0 // ignored
		c.BlockClones = true
		got := mustApply(t, s, persistence.PutCommunity{Community: c}).(persistence.Community)
		if !got.Created.Equal(first.Created) || got.Updated.Before(first.Updated) {
			t.Fatalf("replaced: Created %v, Updated %v; want Created %v and Updated not before %v", got.Created, got.Updated, first.Created, first.Updated)
		}
		wantWriteTime(t, "Updated", got.Updated)
		want := c
		want.Created, want.Updated = first.Created, got.Updated
		wantSame(t, "result", got, want)
		wantCommunity(t, s, want)
	})
}

func testPatchCommunity(t *testing.T, open Opener) {
	var before persistence.Community // as seed stored it
	seed := func(t *testing.T, s persistence.Store) {
		c := community("shop")
		c.TopOrigins = []string{"https://portal.example.net"}
		c.BlockClones = true
		c.UserVerification = persistence.VerificationRequired
		before = mustApply(t, s, persistence.PutCommunity{Community: c, Create: true, TenantDNS: []string{"shop.example"}}).(persistence.Community)
	}
	off := false
	patched := func(edit func(c *persistence.Community)) func(t *testing.T, s persistence.Store, v any) {
		return func(t *testing.T, s persistence.Store, v any) {
			got := v.(persistence.Community)
			want := before
			edit(&want)
			want.Updated = got.Updated
			if got.Updated.Before(before.Updated) {
				t.Fatalf("Updated = %v, before %v", got.Updated, before.Updated)
			}
			wantSame(t, "result", got, want)
			wantCommunity(t, s, want)
		}
	}
	unchanged := func(t *testing.T, s persistence.Store, _ any) { wantCommunity(t, s, before) }
	cases := []opCase{
		{name: "a missing community is not found", op: persistence.PatchCommunity{ID: "nope", Name: "x"}, want: persistence.CommunityMissing("nope"),
			after: func(t *testing.T, s persistence.Store, _ any) { wantNoCommunity(t, s, "nope") }},
		{name: "the fields it does not set are kept", op: persistence.PatchCommunity{ID: "shop", Name: "Renamed"},
			after: patched(func(c *persistence.Community) { c.Name = "Renamed" })},
		{name: "the fields it sets change; BlockClones can be turned off",
			op: persistence.PatchCommunity{ID: "shop", RPIDs: []string{"example.org"}, Origins: []string{"https://example.org"},
				TopOrigins: []string{"https://top.example.net"}, UserVerification: persistence.VerificationDiscouraged, BlockClones: &off,
				AttestationTrust: persistence.AttestationTrustRequired},
			after: patched(func(c *persistence.Community) {
				c.RPIDs, c.Origins, c.TopOrigins = []string{"example.org"}, []string{"https://example.org"}, []string{"https://top.example.net"}
				c.UserVerification, c.BlockClones, c.AttestationTrust = persistence.VerificationDiscouraged, false, persistence.AttestationTrustRequired
			})},
		{name: "a new TenantID moves the community to that tenant, creating it", op: persistence.PatchCommunity{ID: "shop", TenantID: "globex"},
			after: func(t *testing.T, s persistence.Store, v any) {
				patched(func(c *persistence.Community) { c.TenantID = "globex" })(t, s, v)
				if tn := tenant(t, s, "globex"); tn.Name != "globex" {
					t.Fatalf("Tenant(globex) = %+v", tn)
				}
			}},
		{name: "TenantDNS adds hosts to the community's tenant", op: persistence.PatchCommunity{ID: "shop", TenantDNS: []string{"blog.example"}},
			after: func(t *testing.T, s persistence.Store, v any) {
				patched(func(c *persistence.Community) {})(t, s, v)
				if dns := tenant(t, s, "acme").DNS; !same(dns, []string{"shop.example", "blog.example"}) {
					t.Fatalf("the tenant's DNS = %q, want [shop.example blog.example]", dns)
				}
			}},
		{name: "a TenantDNS host of another tenant is refused and changes nothing",
			setup: []persistence.Op{putTenant("globex", "Globex", t0, "globex.example")},
			op:    persistence.PatchCommunity{ID: "shop", Name: "Renamed", TenantDNS: []string{"globex.example"}},
			want:  persistence.HostTaken("globex.example"),
			after: func(t *testing.T, s persistence.Store, v any) {
				unchanged(t, s, v)
				wantTenantOfHost(t, s, "globex.example", "globex")
			}},
	}
	invalid := code(messages.CodeInvalidRequest)
	for _, p := range []struct {
		name string
		op   persistence.PatchCommunity
	}{
		{"an origin outside the RP ID", persistence.PatchCommunity{ID: "shop", Name: "X", Origins: []string{"https://example.org"}}},
		{"an RP ID that is a public suffix", persistence.PatchCommunity{ID: "shop", RPIDs: []string{"com"}}},
		{"a user verification that is none of the three", persistence.PatchCommunity{ID: "shop", UserVerification: "always"}},
		{"an attestation trust that is neither any nor required", persistence.PatchCommunity{ID: "shop", AttestationTrust: "some"}},
		{"a tenant id that is no id", persistence.PatchCommunity{ID: "shop", TenantID: "a/b"}},
		{"no origins", persistence.PatchCommunity{ID: "shop", Origins: []string{}}},
		{"a top origin that is no origin", persistence.PatchCommunity{ID: "shop", TopOrigins: []string{"ftp://top.example"}}},
	} {
		cases = append(cases, opCase{name: "a patch that makes the community invalid is refused and changes nothing: " + p.name,
			op: p.op, want: invalid, after: unchanged})
	}
	runOps(t, open, seed, cases)
}

func testCommunityReads(t *testing.T, open Opener) {
	var b, other, blog persistence.Community
	seed := func(t *testing.T, s persistence.Store) {
		named := func(id, tenant, name string) persistence.Community {
			c := community(id)
			c.TenantID, c.Name = tenant, name
			return mustApply(t, s, persistence.PutCommunity{Community: c, Create: true}).(persistence.Community)
		}
		b = named("b-shop", "acme", "Shop")
		named("c-shop", "acme", "Shop")
		other = named("a-shop", "globex", "Shop")
		blog = named("blog", "acme", "Blog")
	}
	byName := func(tenant, name string) func(t *testing.T, s persistence.Store) (any, error) {
		return func(t *testing.T, s persistence.Store) (any, error) {
			return s.CommunityByName(t.Context(), tenant, name)
		}
	}
	byID := func(id string) func(t *testing.T, s persistence.Store) (any, error) {
		return func(t *testing.T, s persistence.Store) (any, error) { return s.Community(t.Context(), id) }
	}
	// The wanted values are read when the case runs, after the seed.
	cases := []struct {
		name string
		read func(t *testing.T, s persistence.Store) (any, error)
		want *persistence.Community
	}{
		{"Community by id", byID("blog"), &blog},
		{"Community of an unknown id is not found", byID("nothing"), nil},
		{"Community ids are case sensitive", byID("BLOG"), nil},
		{"CommunityByName: the first by id of a tenant's communities with the name", byName("acme", "Shop"), &b},
		{"CommunityByName: another tenant's community with the same name", byName("globex", "Shop"), &other},
		{"CommunityByName: a unique name", byName("acme", "Blog"), &blog},
		{"CommunityByName: names are case sensitive", byName("acme", "shop"), nil},
		{"CommunityByName: an unknown name is not found", byName("acme", "Forum"), nil},
		{"CommunityByName: an unknown tenant is not found", byName("initech", "Shop"), nil},
	}
	s := open(t)
	seed(t, s)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.read(t, s)
			if tc.want == nil {
				wantNotFound(t, "read", err)
				return
			}
			if err != nil {
				t.Fatalf("read: %s", describe(err))
			}
			wantSame(t, "read", got, *tc.want)
		})
	}
}
