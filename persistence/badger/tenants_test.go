package badger_test

import (
	"reflect"
	"testing"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// Tenant host names: stored lower case without a port, each owned by one tenant.
func TestTenantDNS(t *testing.T) {
	t.Run("TenantByDNS finds the tenant by any case and with a port", func(t *testing.T) {
		s := mustOpen(t)
		got := mustApply(t, s, persistence.PutTenant{
			Tenant: persistence.Tenant{ID: "acme", Name: "ACME"}, DNS: []string{"Login.Example.COM:8443", "acme.example"},
		}).(persistence.Tenant)
		if !reflect.DeepEqual(got.DNS, []string{"login.example.com", "acme.example"}) {
			t.Fatalf("DNS = %q, want [login.example.com acme.example]", got.DNS)
		}
		var r persistence.Communities = s
		for _, host := range []string{"login.example.com", "LOGIN.example.com", "login.example.com:443", "acme.example"} {
			tn, err := r.TenantByDNS(ctx, host)
			if err != nil || tn.ID != "acme" || tn.Name != "ACME" {
				t.Fatalf("TenantByDNS(%q) = %+v, %v; want acme", host, tn, err)
			}
		}
		for _, host := range []string{"example.com", "other.example", "", "a/b"} {
			_, err := r.TenantByDNS(ctx, host)
			wantNotFound(t, "TenantByDNS("+host+")", err)
		}
	})
	t.Run("DNS given in a new tenant record is ignored; only the DNS field adds hosts", func(t *testing.T) {
		s := mustOpen(t)
		got := mustApply(t, s, persistence.PutTenant{Tenant: persistence.Tenant{ID: "acme", DNS: []string{"sneaky.example"}}}).(persistence.Tenant)
		if len(got.DNS) != 0 {
			t.Fatalf("DNS = %q, want none", got.DNS)
		}
		_, err := s.TenantByDNS(ctx, "sneaky.example")
		wantNotFound(t, "TenantByDNS(sneaky.example)", err)
	})
	t.Run("adding hosts to an existing tenant keeps it and does not repeat a host", func(t *testing.T) {
		s := mustOpen(t)
		first := mustApply(t, s, persistence.PutTenant{Tenant: persistence.Tenant{ID: "acme", Name: "ACME", Created: t0}, DNS: []string{"a.example"}}).(persistence.Tenant)
		got := mustApply(t, s, persistence.PutTenant{Tenant: persistence.Tenant{ID: "acme", Name: "Other"}, DNS: []string{"A.example", "b.example"}}).(persistence.Tenant)
		want := first
		want.DNS = []string{"a.example", "b.example"}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("tenant = %+v, want %+v", got, want)
		}
		if stored, err := s.Tenant(ctx, "acme"); err != nil || !reflect.DeepEqual(stored, want) {
			t.Fatalf("stored tenant = %+v, %v; want %+v", stored, err, want)
		}
	})
	t.Run("a host of another tenant is a conflict", func(t *testing.T) {
		s := mustOpen(t)
		mustApply(t, s, persistence.PutTenant{Tenant: persistence.Tenant{ID: "acme"}, DNS: []string{"login.example.com"}})
		mustApply(t, s, persistence.PutTenant{Tenant: persistence.Tenant{ID: "globex"}})
		err := applyErr(t, s, persistence.PutTenant{Tenant: persistence.Tenant{ID: "globex"}, DNS: []string{"LOGIN.example.com"}})
		wantCode(t, err, messages.CodeConflict)
		if tn, err := s.TenantByDNS(ctx, "login.example.com"); err != nil || tn.ID != "acme" {
			t.Fatalf("TenantByDNS = %+v, %v; want acme", tn, err)
		}
		if tn, err := s.Tenant(ctx, "globex"); err != nil || len(tn.DNS) != 0 {
			t.Fatalf("Tenant(globex) = %+v, %v; want no hosts", tn, err)
		}
	})
	t.Run("a host that is not a plain host name is refused", func(t *testing.T) {
		s := mustOpen(t)
		for _, host := range []string{"", "a/b", "//example.com", "user@example.com", "a b.example", "a\x00b", "[::1]"} {
			err := applyErr(t, s, persistence.PutTenant{Tenant: persistence.Tenant{ID: "acme"}, DNS: []string{host}})
			wantCode(t, err, messages.CodeInvalidRequest)
		}
		_, err := s.Tenant(ctx, "acme")
		wantNotFound(t, "Tenant(acme) after refused puts", err)
	})
	t.Run("PutCommunity and PatchCommunity add hosts to the community's tenant", func(t *testing.T) {
		s := mustOpen(t)
		mustApply(t, s, persistence.PutCommunity{Community: community("shop"), Create: true, TenantDNS: []string{"shop.example"}})
		mustApply(t, s, persistence.PatchCommunity{ID: "shop", TenantDNS: []string{"blog.example"}})
		tn, err := s.Tenant(ctx, "acme")
		if err != nil || !reflect.DeepEqual(tn.DNS, []string{"shop.example", "blog.example"}) {
			t.Fatalf("Tenant(acme) = %+v, %v; want hosts shop.example, blog.example", tn, err)
		}
		if got, err := s.TenantByDNS(ctx, "blog.example"); err != nil || got.ID != "acme" {
			t.Fatalf("TenantByDNS(blog.example) = %+v, %v; want acme", got, err)
		}
	})
}

// An op that is refused leaves nothing behind (ops.go): a host claimed before the refusal
// must not stay claimed.
func TestRefusedPutTenantLeavesNoHostBehind(t *testing.T) {
	s := mustOpen(t)
	mustApply(t, s, persistence.PutTenant{Tenant: persistence.Tenant{ID: "acme"}, DNS: []string{"taken.example"}})
	err := applyErr(t, s, persistence.PutTenant{Tenant: persistence.Tenant{ID: "newco"}, DNS: []string{"free.example", "taken.example"}})
	wantCode(t, err, messages.CodeConflict)
	_, err = s.Tenant(ctx, "newco")
	wantNotFound(t, "Tenant(newco)", err)
	if err := applyErr(t, s, persistence.PutTenant{Tenant: persistence.Tenant{ID: "globex"}, DNS: []string{"free.example"}}); err != nil {
		t.Fatalf("free.example cannot be claimed after the refused put: %v", err)
	}
}

func TestCommunityByName(t *testing.T) {
	s := mustOpen(t)
	named := func(id, tenant, name string) persistence.Community {
		c := community(id)
		c.TenantID, c.Name = tenant, name
		return mustApply(t, s, persistence.PutCommunity{Community: c, Create: true}).(persistence.Community)
	}
	b := named("b-shop", "acme", "Shop")
	named("c-shop", "acme", "Shop")
	other := named("a-shop", "globex", "Shop")
	blog := named("blog", "acme", "Blog")
	tests := []struct {
		name, tenant, community string
		want                    *persistence.Community
	}{
		{"the first by id of a tenant's communities with the name", "acme", "Shop", &b},
		{"another tenant's community with the same name", "globex", "Shop", &other},
		{"a unique name", "acme", "Blog", &blog},
		{"names are case sensitive", "acme", "shop", nil},
		{"unknown name", "acme", "Forum", nil},
		{"unknown tenant", "initech", "Shop", nil},
	}
	var r persistence.Communities = s
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := r.CommunityByName(ctx, tc.tenant, tc.community)
			if tc.want == nil {
				wantNotFound(t, "CommunityByName", err)
				return
			}
			if err != nil || !reflect.DeepEqual(got, *tc.want) {
				t.Fatalf("CommunityByName = %+v, %v; want %+v", got, err, *tc.want)
			}
		})
	}
}
