package storetest

import (
	"strings"
	"testing"
	"time"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// wantVendorRecords fails the test unless the store holds exactly want, in community then
// AAGUID order.
func wantVendorRecords(t *testing.T, s persistence.Store, want ...persistence.VendorRecord) {
	t.Helper()
	got, err := s.AllVendorRecords(t.Context(), nil)
	if err != nil {
		t.Fatalf("AllVendorRecords: %s", describe(err))
	}
	wantSame(t, "AllVendorRecords", got, append([]persistence.VendorRecord{}, want...))
}

func testPutVendorMetadata(t *testing.T, open Opener) {
	cases := []opCase{
		{
			name: "stores the record with a fresh id, stamped with the time of the write",
			op:   persistence.PutVendorMetadata{Record: vendorRecord("shop", yubikey)},
			after: func(t *testing.T, s persistence.Store, v any) {
				got := v.(persistence.VendorRecord)
				if !strings.HasPrefix(got.ID, "vm_") || len(got.ID) != 19 || strings.Trim(got.ID[3:], "0123456789abcdef") != "" {
					t.Fatalf("id %q, want vm_ and 16 hex digits", got.ID)
				}
				wantWriteTime(t, "UpdatedAt", got.UpdatedAt)
				want := vendorRecord("shop", yubikey)
				want.ID, want.UpdatedAt, want.Created = got.ID, got.UpdatedAt, got.UpdatedAt
				wantSame(t, "result", got, want)
				wantVendorRecords(t, s, want)
			},
		},
		{
			name: "an id and an UpdatedAt given are kept, and Created is UpdatedAt",
			op: persistence.PutVendorMetadata{Record: func() persistence.VendorRecord {
				r := vendorRecord("shop", yubikey)
				r.ID, r.UpdatedAt, r.Created = "vm_0123456789abcdef", t0, t1
				return r
			}()},
			after: func(t *testing.T, s persistence.Store, v any) {
				want := vendorRecord("shop", yubikey)
				want.ID, want.UpdatedAt, want.Created = "vm_0123456789abcdef", t0, t0
				wantSame(t, "result", v, want)
				wantVendorRecords(t, s, want)
			},
		},
		{
			name:  "a second record of the community for the AAGUID is refused, and the first kept",
			setup: []persistence.Op{persistence.PutVendorMetadata{Record: func() persistence.VendorRecord { r := vendorRecord("shop", yubikey); r.UpdatedAt = t0; return r }()}},
			op:    persistence.PutVendorMetadata{Record: func() persistence.VendorRecord { r := vendorRecord("shop", yubikey); r.Name = "Other"; return r }()},
			want:  persistence.VendorRecordExists(yubikey),
			after: func(t *testing.T, s persistence.Store, _ any) {
				all, err := s.AllVendorRecords(t.Context(), nil)
				if err != nil || len(all) != 1 || all[0].Name != vendorRecord("shop", yubikey).Name || !all[0].UpdatedAt.Equal(t0) {
					t.Fatalf("AllVendorRecords = %+v, %s; want the first record only", all, describe(err))
				}
			},
		},
		{
			name:  "the same AAGUID in another community is another record, with an id of its own",
			setup: []persistence.Op{persistence.PutVendorMetadata{Record: vendorRecord("shop", yubikey)}},
			op:    persistence.PutVendorMetadata{Record: vendorRecord("blog", yubikey)},
			after: func(t *testing.T, s persistence.Store, v any) {
				all, err := s.AllVendorRecords(t.Context(), nil)
				if err != nil || len(all) != 2 || all[0].ID == all[1].ID || all[0].CommunityID != "blog" || all[0].ID != v.(persistence.VendorRecord).ID {
					t.Fatalf("AllVendorRecords = %+v, %s; want blog's and shop's, with ids of their own", all, describe(err))
				}
			},
		},
		{
			name: "a community that does not exist is refused",
			op:   persistence.PutVendorMetadata{Record: vendorRecord("nowhere", yubikey)},
			want: persistence.CommunityUnknown("nowhere"),
			after: func(t *testing.T, s persistence.Store, _ any) {
				wantVendorRecords(t, s)
			},
		},
	}
	for _, bad := range []struct {
		name string
		edit func(r *persistence.VendorRecord)
	}{
		{"the all-zero AAGUID of U2F authenticators", func(r *persistence.VendorRecord) { r.AAGUID = "00000000-0000-0000-0000-000000000000" }},
		{"an AAGUID in upper case (ops take the canonical form)", func(r *persistence.VendorRecord) { r.AAGUID = strings.ToUpper(yubikey) }},
		{"an AAGUID without hyphens", func(r *persistence.VendorRecord) { r.AAGUID = strings.ReplaceAll(yubikey, "-", "") }},
		{"an AAGUID in braces", func(r *persistence.VendorRecord) { r.AAGUID = "{" + yubikey[:34] + "}" }},
		{"no metadata", func(r *persistence.VendorRecord) { r.Metadata = "" }},
		{"metadata over 256 KiB", func(r *persistence.VendorRecord) { r.Metadata = strings.Repeat(" ", 256<<10+1) }},
		{"no name", func(r *persistence.VendorRecord) { r.Name = "" }},
		{"a name of 257 bytes", func(r *persistence.VendorRecord) { r.Name = strings.Repeat("n", 257) }},
		{"a name with a control character", func(r *persistence.VendorRecord) { r.Name = "Yubi\nKey" }},
		{"a name that is not UTF-8", func(r *persistence.VendorRecord) { r.Name = "\xff" }},
		{"no updatedBy", func(r *persistence.VendorRecord) { r.UpdatedBy = "" }},
		{"a community id with a NUL", func(r *persistence.VendorRecord) { r.CommunityID = "sh\x00op" }},
	} {
		r := vendorRecord("shop", yubikey)
		bad.edit(&r)
		cases = append(cases, opCase{name: "refused as Check refuses it: " + bad.name, op: persistence.PutVendorMetadata{Record: r}, want: byCheck,
			after: func(t *testing.T, s persistence.Store, _ any) { wantVendorRecords(t, s) }})
	}
	runOps(t, open, func(t *testing.T, s persistence.Store) {
		seedCommunity(t, s, "shop")
		seedCommunity(t, s, "blog")
	}, cases)
}

func testPatchVendorMetadata(t *testing.T, open Opener) {
	text, name, off, on := `{"aaguid":"`+yubikey+`","description":"new"}`, "Renamed", false, true
	var stored persistence.VendorRecord
	seed := func(t *testing.T, s persistence.Store) {
		seedCommunity(t, s, "shop")
		seedCommunity(t, s, "shop2")
		r := vendorRecord("shop", yubikey)
		r.UpdatedAt = t0
		stored = seedVendor(t, s, r)
	}
	patched := func(edit func(r *persistence.VendorRecord)) func(t *testing.T, s persistence.Store, v any) {
		return func(t *testing.T, s persistence.Store, v any) {
			want := stored
			edit(&want)
			wantSame(t, "result", v, want)
			wantVendorRecords(t, s, want)
		}
	}
	unchanged := func(t *testing.T, s persistence.Store, _ any) { wantVendorRecords(t, s, stored) }
	patch := func(p persistence.PatchVendorMetadata) persistence.PatchVendorMetadata {
		if p.CommunityID == "" {
			p.CommunityID = "shop"
		}
		if p.AAGUID == "" {
			p.AAGUID = yubikey
		}
		return p
	}
	stamp := func(r *persistence.VendorRecord) { r.UpdatedBy, r.UpdatedAt = "auditor", t1 }
	cases := []opCase{
		{name: "changes disabled only, and stamps who and when", op: patch(persistence.PatchVendorMetadata{Disabled: &on, UpdatedBy: "auditor", At: t1}),
			after: patched(func(r *persistence.VendorRecord) { stamp(r); r.Disabled = true })},
		{name: "changes the name only", op: patch(persistence.PatchVendorMetadata{Name: &name, UpdatedBy: "auditor", At: t1}),
			after: patched(func(r *persistence.VendorRecord) { stamp(r); r.Name = name })},
		{name: "changes the metadata only", op: patch(persistence.PatchVendorMetadata{Metadata: &text, UpdatedBy: "auditor", At: t1}),
			after: patched(func(r *persistence.VendorRecord) { stamp(r); r.Metadata = text })},
		{name: "changes all three", op: patch(persistence.PatchVendorMetadata{Metadata: &text, Name: &name, Disabled: &off, UpdatedBy: "auditor", At: t1}),
			after: patched(func(r *persistence.VendorRecord) { stamp(r); r.Metadata, r.Name = text, name })},
		{name: "finds the record by its AAGUID in upper case",
			op:    patch(persistence.PatchVendorMetadata{AAGUID: strings.ToUpper(yubikey), Disabled: &on, UpdatedBy: "auditor", At: t1}),
			after: patched(func(r *persistence.VendorRecord) { stamp(r); r.Disabled = true })},
		{name: "a zero At stamps the time of the write", op: patch(persistence.PatchVendorMetadata{Disabled: &on, UpdatedBy: "auditor"}),
			after: func(t *testing.T, s persistence.Store, v any) {
				at := v.(persistence.VendorRecord).UpdatedAt
				wantWriteTime(t, "UpdatedAt", at)
				patched(func(r *persistence.VendorRecord) { r.UpdatedBy, r.UpdatedAt, r.Disabled = "auditor", at, true })(t, s, v)
			}},
		{name: "a record of another community is not found", op: patch(persistence.PatchVendorMetadata{CommunityID: "shop2", Disabled: &on, UpdatedBy: "x"}),
			want: persistence.VendorRecordMissing(yubikey), after: unchanged},
		{name: "a record of another AAGUID is not found", op: patch(persistence.PatchVendorMetadata{AAGUID: hello, Disabled: &on, UpdatedBy: "x"}),
			want: persistence.VendorRecordMissing(hello), after: unchanged},
		{name: "a record of an unknown community is not found", op: patch(persistence.PatchVendorMetadata{CommunityID: "nowhere", Disabled: &on, UpdatedBy: "x"}),
			want: persistence.VendorRecordMissing(yubikey), after: unchanged},
		{name: "a record of what cannot be a community id is not found",
			op:   patch(persistence.PatchVendorMetadata{CommunityID: "sh\x00op", Disabled: &on, UpdatedBy: "x"}),
			want: persistence.VendorRecordMissing(yubikey), after: unchanged},
		{name: "an AAGUID that is no AAGUID is refused as Check refuses it",
			op: patch(persistence.PatchVendorMetadata{AAGUID: "nonsense", Disabled: &on, UpdatedBy: "x"}), want: byCheck, after: unchanged},
	}
	empty, control := "", "a\x01b"
	for _, bad := range []struct {
		name string
		p    persistence.PatchVendorMetadata
	}{
		{"an empty name", persistence.PatchVendorMetadata{Name: &empty, UpdatedBy: "x"}},
		{"a name with a control character", persistence.PatchVendorMetadata{Name: &control, UpdatedBy: "x"}},
		{"empty metadata", persistence.PatchVendorMetadata{Metadata: &empty, UpdatedBy: "x"}},
		{"no updatedBy", persistence.PatchVendorMetadata{Disabled: &on}},
	} {
		cases = append(cases, opCase{name: "a patch that would make the record invalid is refused and changes nothing: " + bad.name,
			op: patch(bad.p), want: code(messages.CodeInvalidRequest), after: unchanged})
	}
	runOps(t, open, seed, cases)
}

func testVendorReads(t *testing.T, open Opener) {
	records := map[string]persistence.VendorRecord{}
	seed := func(t *testing.T, s persistence.Store) {
		// "shop" is a prefix of "shop2": a community's reads must not run into the other's.
		for _, c := range []string{"shop", "shop2", "blog"} {
			seedCommunity(t, s, c)
		}
		for i, k := range [][2]string{{"shop2", yubikey}, {"shop", hello}, {"shop", yubikey}, {"blog", yubikey}} {
			r := vendorRecord(k[0], k[1])
			r.UpdatedAt = t0.Add(time.Duration(i) * time.Second)
			records[k[0]+"/"+k[1][:8]] = seedVendor(t, s, r)
		}
	}
	list := func(read func(t *testing.T, s persistence.Store) ([]persistence.VendorRecord, error)) func(t *testing.T, s persistence.Store) (any, error) {
		return func(t *testing.T, s persistence.Store) (any, error) {
			rs, err := read(t, s)
			keys := []string{}
			for _, r := range rs {
				k := r.CommunityID + "/" + r.AAGUID[:8]
				if !same(r, records[k]) {
					t.Fatalf("record %s = %+v, want %+v", k, r, records[k])
				}
				keys = append(keys, k)
			}
			return keys, err
		}
	}
	of := func(community string, aaguids ...string) func(t *testing.T, s persistence.Store) (any, error) {
		return list(func(t *testing.T, s persistence.Store) ([]persistence.VendorRecord, error) {
			return s.VendorRecordsOf(t.Context(), community, aaguids)
		})
	}
	all := func(aaguids ...string) func(t *testing.T, s persistence.Store) (any, error) {
		return list(func(t *testing.T, s persistence.Store) ([]persistence.VendorRecord, error) {
			return s.AllVendorRecords(t.Context(), aaguids)
		})
	}
	one := func(community, aaguid string) func(t *testing.T, s persistence.Store) (any, error) {
		return func(t *testing.T, s persistence.Store) (any, error) {
			r, err := s.VendorRecord(t.Context(), community, aaguid)
			return r.CommunityID + "/" + r.AAGUID[:min(8, len(r.AAGUID))], err
		}
	}
	runReads(t, open, seed, []readCase{
		{name: "VendorRecord of a community and an AAGUID", read: one("shop", yubikey), want: "shop/cb69481e"},
		{name: "VendorRecord of an AAGUID in upper case", read: one("shop", strings.ToUpper(yubikey)), want: "shop/cb69481e"},
		{name: "VendorRecord of an AAGUID without a record is not found", read: one("shop2", hello), wantErr: persistence.ErrNotFound},
		{name: "VendorRecord of what is no AAGUID is not found", read: one("shop", "nonsense"), wantErr: persistence.ErrNotFound},
		{name: "VendorRecord of what cannot be a community is not found", read: one("sh\x00op", yubikey), wantErr: persistence.ErrNotFound},
		{name: "VendorRecordsOf: a community's records, in AAGUID order", read: of("shop"), want: []string{"shop/6028b017", "shop/cb69481e"}},
		{name: "VendorRecordsOf an empty list is every record", read: of("shop", []string{}...), want: []string{"shop/6028b017", "shop/cb69481e"}},
		{name: "VendorRecordsOf the community whose id extends another's", read: of("shop2"), want: []string{"shop2/cb69481e"}},
		{name: "VendorRecordsOf some AAGUIDs in any case, one without a record", read: of("shop2", strings.ToUpper(yubikey), hello),
			want: []string{"shop2/cb69481e"}},
		{name: "VendorRecordsOf AAGUIDs in another order come in AAGUID order", read: of("shop", yubikey, hello), want: []string{"shop/6028b017", "shop/cb69481e"}},
		{name: "VendorRecordsOf only what cannot be an AAGUID is none", read: of("shop", "nonsense", ""), want: []string{}},
		{name: "VendorRecordsOf a community without records is none", read: of("nowhere"), want: []string{}},
		{name: "VendorRecordsOf what cannot be a community is none", read: of("sh\x00op"), want: []string{}},
		{name: "AllVendorRecords: every community's, in community then AAGUID order", read: all(),
			want: []string{"blog/cb69481e", "shop/6028b017", "shop/cb69481e", "shop2/cb69481e"}},
		{name: "AllVendorRecords of one AAGUID", read: all(strings.ToUpper(yubikey)), want: []string{"blog/cb69481e", "shop/cb69481e", "shop2/cb69481e"}},
		{name: "AllVendorRecords of only what cannot be an AAGUID is none", read: all("nonsense"), want: []string{}},
	})
}
