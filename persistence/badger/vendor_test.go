package badger_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
	"github.com/webauthnd/webauthnd/persistence/badger"
)

const (
	yubikey = "cb69481e-8ff7-4039-93ec-0a2729a154a8"
	hello   = "6028b017-b1d4-4c02-b4b3-afcdafc96bb2"
)

// vendorRecord returns a valid record of community for aaguid.
func vendorRecord(community, aaguid string) persistence.VendorRecord {
	return persistence.VendorRecord{CommunityID: community, AAGUID: aaguid, Metadata: `{"aaguid":"` + aaguid + `"}`,
		Name: "Model " + aaguid[:8], UpdatedBy: "ops@example.com"}
}

// seedVendor creates a record and returns it as stored.
func seedVendor(t *testing.T, s *badger.Store, r persistence.VendorRecord) persistence.VendorRecord {
	t.Helper()
	return mustApply(t, s, persistence.PutVendorMetadata{Record: r}).(persistence.VendorRecord)
}

func TestPutVendorMetadata(t *testing.T) {
	t.Run("stores the record with a fresh id and the time of the write; every read finds it", func(t *testing.T) {
		s := mustOpen(t)
		seedCommunity(t, s, "shop")
		before := time.Now().UTC()
		got := seedVendor(t, s, vendorRecord("shop", yubikey))
		if !strings.HasPrefix(got.ID, "vm_") || len(got.ID) != 19 || got.UpdatedAt.Before(before) || !got.Created.Equal(got.UpdatedAt) {
			t.Fatalf("stored record = %+v: want an id vm_<16 hex>, UpdatedAt = Created = the time of the write", got)
		}
		want := vendorRecord("shop", yubikey)
		want.ID, want.UpdatedAt, want.Created = got.ID, got.UpdatedAt, got.Created
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("stored record = %+v, want %+v", got, want)
		}
		for name, read := range map[string]func() (any, error){
			"VendorRecord":             func() (any, error) { return s.VendorRecord(ctx, "shop", yubikey) },
			"VendorRecord, upper case": func() (any, error) { return s.VendorRecord(ctx, "shop", strings.ToUpper(yubikey)) },
			"VendorRecordsOf": func() (any, error) {
				r, err := s.VendorRecordsOf(ctx, "shop", nil)
				return one(r), err
			},
			"VendorRecordsOf the AAGUID": func() (any, error) {
				r, err := s.VendorRecordsOf(ctx, "shop", []string{strings.ToUpper(yubikey)})
				return one(r), err
			},
			"AllVendorRecords": func() (any, error) {
				r, err := s.AllVendorRecords(ctx, nil)
				return one(r), err
			},
		} {
			v, err := read()
			if err != nil || !reflect.DeepEqual(v, want) {
				t.Errorf("%s = %+v, %v; want %+v", name, v, err, want)
			}
		}
	})
	t.Run("a second record for the AAGUID is 409 conflict and the first is unchanged", func(t *testing.T) {
		s := mustOpen(t)
		seedCommunity(t, s, "shop")
		first := seedVendor(t, s, vendorRecord("shop", yubikey))
		again := vendorRecord("shop", yubikey)
		again.Name = "Other"
		wantCode(t, applyErr(t, s, persistence.PutVendorMetadata{Record: again}), messages.CodeConflict)
		if got, err := s.VendorRecord(ctx, "shop", yubikey); err != nil || !reflect.DeepEqual(got, first) {
			t.Fatalf("VendorRecord after the refused second put = %+v, %v; want %+v", got, err, first)
		}
	})
	t.Run("the same AAGUID in another community is another record", func(t *testing.T) {
		s := mustOpen(t)
		seedCommunity(t, s, "shop")
		seedCommunity(t, s, "shop2")
		a := seedVendor(t, s, vendorRecord("shop", yubikey))
		b := seedVendor(t, s, vendorRecord("shop2", yubikey))
		if a.ID == b.ID {
			t.Fatalf("two records share id %s", a.ID)
		}
	})
	t.Run("a community that does not exist is community_unknown", func(t *testing.T) {
		s := mustOpen(t)
		wantCode(t, applyErr(t, s, persistence.PutVendorMetadata{Record: vendorRecord("nowhere", yubikey)}), messages.CodeCommunityUnknown)
		_, err := s.VendorRecord(ctx, "nowhere", yubikey)
		wantNotFound(t, "VendorRecord of the refused put", err)
	})
	invalid := []struct {
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
	}
	for _, tc := range invalid {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			s := mustOpen(t)
			seedCommunity(t, s, "shop")
			r := vendorRecord("shop", yubikey)
			tc.edit(&r)
			wantCode(t, applyErr(t, s, persistence.PutVendorMetadata{Record: r}), messages.CodeInvalidRequest)
			if all, err := s.AllVendorRecords(ctx, nil); err != nil || len(all) != 0 {
				t.Fatalf("AllVendorRecords after the refusal = %+v, %v; want none", all, err)
			}
		})
	}
}

// one returns the only record of rs, or rs itself when there is not exactly one.
func one(rs []persistence.VendorRecord) any {
	if len(rs) != 1 {
		return rs
	}
	return rs[0]
}

func TestPatchVendorMetadata(t *testing.T) {
	text, name, off, on := `{"aaguid":"`+yubikey+`","description":"new"}`, "Renamed", false, true
	cases := []struct {
		name  string
		patch persistence.PatchVendorMetadata
		want  func(r *persistence.VendorRecord)
	}{
		{"disabled only", persistence.PatchVendorMetadata{Disabled: &on},
			func(r *persistence.VendorRecord) { r.Disabled = true }},
		{"name only", persistence.PatchVendorMetadata{Name: &name},
			func(r *persistence.VendorRecord) { r.Name = name }},
		{"metadata only", persistence.PatchVendorMetadata{Metadata: &text},
			func(r *persistence.VendorRecord) { r.Metadata = text }},
		{"all three", persistence.PatchVendorMetadata{Metadata: &text, Name: &name, Disabled: &off},
			func(r *persistence.VendorRecord) { r.Metadata, r.Name = text, name }},
		{"the AAGUID in upper case", persistence.PatchVendorMetadata{AAGUID: strings.ToUpper(yubikey), Disabled: &on},
			func(r *persistence.VendorRecord) { r.Disabled = true }},
	}
	for _, tc := range cases {
		t.Run("changes "+tc.name+" and stamps who and when", func(t *testing.T) {
			s := mustOpen(t)
			seedCommunity(t, s, "shop")
			stored := seedVendor(t, s, vendorRecord("shop", yubikey))
			p := tc.patch
			p.CommunityID, p.UpdatedBy, p.At = "shop", "auditor", t1
			if p.AAGUID == "" {
				p.AAGUID = yubikey
			}
			got := mustApply(t, s, p).(persistence.VendorRecord)
			want := stored
			tc.want(&want)
			want.UpdatedBy, want.UpdatedAt = "auditor", t1
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("patched record = %+v, want %+v", got, want)
			}
			if read, err := s.VendorRecord(ctx, "shop", yubikey); err != nil || !reflect.DeepEqual(read, want) {
				t.Fatalf("VendorRecord after the patch = %+v, %v; want %+v", read, err, want)
			}
		})
	}
	t.Run("a record that does not exist is 404 not_found", func(t *testing.T) {
		s := mustOpen(t)
		seedCommunity(t, s, "shop")
		seedCommunity(t, s, "shop2")
		seedVendor(t, s, vendorRecord("shop2", yubikey))
		for _, p := range []persistence.PatchVendorMetadata{
			{CommunityID: "shop", AAGUID: yubikey, Disabled: &on, UpdatedBy: "x"},
			{CommunityID: "shop2", AAGUID: hello, Disabled: &on, UpdatedBy: "x"},
			{CommunityID: "nowhere", AAGUID: yubikey, Disabled: &on, UpdatedBy: "x"},
			{CommunityID: "sh\x00op2", AAGUID: yubikey, Disabled: &on, UpdatedBy: "x"},
		} {
			wantCode(t, applyErr(t, s, p), messages.CodeNotFound)
		}
		if all, _ := s.AllVendorRecords(ctx, nil); len(all) != 1 || all[0].Disabled {
			t.Fatalf("records after the refused patches = %+v; want shop2's, enabled", all)
		}
	})
	t.Run("a patch that would make an invalid record changes nothing", func(t *testing.T) {
		s := mustOpen(t)
		seedCommunity(t, s, "shop")
		stored := seedVendor(t, s, vendorRecord("shop", yubikey))
		empty, control := "", "a\x01b"
		for _, p := range []persistence.PatchVendorMetadata{
			{Name: &empty, UpdatedBy: "x"},
			{Name: &control, UpdatedBy: "x"},
			{Metadata: &empty, UpdatedBy: "x"},
			{Disabled: &on},
		} {
			p.CommunityID, p.AAGUID = "shop", yubikey
			wantCode(t, applyErr(t, s, p), messages.CodeInvalidRequest)
		}
		if got, err := s.VendorRecord(ctx, "shop", yubikey); err != nil || !reflect.DeepEqual(got, stored) {
			t.Fatalf("VendorRecord after refused patches = %+v, %v; want %+v", got, err, stored)
		}
	})
	t.Run("a put and a patch in one batch: the patch sees the put", func(t *testing.T) {
		s := mustOpen(t)
		seedCommunity(t, s, "shop")
		res := s.Apply(ctx, []persistence.Op{
			persistence.PutVendorMetadata{Record: vendorRecord("shop", yubikey)},
			persistence.PatchVendorMetadata{CommunityID: "shop", AAGUID: yubikey, Disabled: &on, UpdatedBy: "x"},
		})
		if res[0].Err != nil || res[1].Err != nil {
			t.Fatalf("batch: %v, %v", res[0].Err, res[1].Err)
		}
		if got, _ := s.VendorRecord(ctx, "shop", yubikey); !got.Disabled {
			t.Fatalf("record after the batch = %+v, want disabled", got)
		}
	})
}

func TestVendorRecordReads(t *testing.T) {
	s := mustOpen(t)
	// "shop" is a prefix of "shop2": a community's reads must not run into the other's keys.
	for _, c := range []string{"shop", "shop2", "blog"} {
		seedCommunity(t, s, c)
	}
	seedVendor(t, s, vendorRecord("shop2", yubikey))
	seedVendor(t, s, vendorRecord("shop", hello))
	seedVendor(t, s, vendorRecord("shop", yubikey))
	seedVendor(t, s, vendorRecord("blog", yubikey))
	keys := func(rs []persistence.VendorRecord) []string {
		out := []string{}
		for _, r := range rs {
			out = append(out, r.CommunityID+"/"+r.AAGUID[:8])
		}
		return out
	}
	cases := []struct {
		name string
		read func() ([]persistence.VendorRecord, error)
		want []string
	}{
		{"a community's records, in AAGUID order", func() ([]persistence.VendorRecord, error) { return s.VendorRecordsOf(ctx, "shop", nil) },
			[]string{"shop/6028b017", "shop/cb69481e"}},
		{"an empty list is every record", func() ([]persistence.VendorRecord, error) { return s.VendorRecordsOf(ctx, "shop", []string{}) },
			[]string{"shop/6028b017", "shop/cb69481e"}},
		{"the community whose id extends another's", func() ([]persistence.VendorRecord, error) { return s.VendorRecordsOf(ctx, "shop2", nil) },
			[]string{"shop2/cb69481e"}},
		{"some AAGUIDs, one without a record", func() ([]persistence.VendorRecord, error) {
			return s.VendorRecordsOf(ctx, "shop2", []string{yubikey, hello})
		}, []string{"shop2/cb69481e"}},
		{"only AAGUIDs that cannot be one", func() ([]persistence.VendorRecord, error) {
			return s.VendorRecordsOf(ctx, "shop", []string{"nonsense", ""})
		}, []string{}},
		{"a community without records", func() ([]persistence.VendorRecord, error) { return s.VendorRecordsOf(ctx, "nowhere", nil) }, []string{}},
		{"an id that cannot be a community", func() ([]persistence.VendorRecord, error) { return s.VendorRecordsOf(ctx, "sh\x00op", nil) }, []string{}},
		{"every community's, in community then AAGUID order", func() ([]persistence.VendorRecord, error) { return s.AllVendorRecords(ctx, nil) },
			[]string{"blog/cb69481e", "shop/6028b017", "shop/cb69481e", "shop2/cb69481e"}},
		{"every community's, for one AAGUID", func() ([]persistence.VendorRecord, error) {
			return s.AllVendorRecords(ctx, []string{strings.ToUpper(yubikey)})
		}, []string{"blog/cb69481e", "shop/cb69481e", "shop2/cb69481e"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := tc.read()
			if err != nil {
				t.Fatal(err)
			}
			if got := keys(rs); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("records = %v, want %v", got, tc.want)
			}
		})
	}
	for _, bad := range [][2]string{{"shop", "nonsense"}, {"sh\x00op", yubikey}, {"blog", hello}} {
		_, err := s.VendorRecord(ctx, bad[0], bad[1])
		wantNotFound(t, "VendorRecord("+bad[0]+", "+bad[1]+")", err)
	}
}

// The generation moves on with every committed batch that wrote a record, and only then.
func TestVendorGeneration(t *testing.T) {
	s := mustOpen(t)
	seedCommunity(t, s, "shop")
	on := true
	gen := s.VendorGeneration()
	steps := []struct {
		name  string
		op    persistence.Op
		moves bool
	}{
		{"a put", persistence.PutVendorMetadata{Record: vendorRecord("shop", yubikey)}, true},
		{"a patch", persistence.PatchVendorMetadata{CommunityID: "shop", AAGUID: yubikey, Disabled: &on, UpdatedBy: "x"}, true},
		{"a refused put (a needless move costs one re-read)", persistence.PutVendorMetadata{Record: vendorRecord("shop", yubikey)}, true},
		{"a write of something else", persistence.PutSecretIfAbsent{Name: "x", Value: []byte("y")}, false},
		{"a community change", persistence.PatchCommunity{ID: "shop", Name: "Shop"}, false},
	}
	for _, step := range steps {
		s.Apply(ctx, []persistence.Op{step.op})
		next := s.VendorGeneration()
		if moved := next != gen; moved != step.moves {
			t.Errorf("after %s the generation went from %d to %d; want moved = %v", step.name, gen, next, step.moves)
		}
		gen = next
	}
}

// The vendor routes read "any" as every community: no community may be created with that id.
func TestCommunityIDAnyIsReserved(t *testing.T) {
	s := mustOpen(t)
	for _, id := range []string{"any", "ANY", "Any"} {
		c := community(id)
		wantCode(t, applyErr(t, s, persistence.PutCommunity{Community: c, Create: true}), messages.CodeInvalidRequest)
		_, err := s.Community(ctx, id)
		wantNotFound(t, "Community("+id+")", err)
	}
	seedCommunity(t, s, "anything") // only the id itself is reserved
}

// Concurrent puts of one AAGUID, each in its own Apply: exactly one is stored, every other is
// 409 conflict.
func TestPutVendorMetadataConcurrent(t *testing.T) {
	const n = 20
	s := mustOpen(t)
	seedCommunity(t, s, "shop")
	errs := make(chan error, n)
	start := make(chan struct{})
	for i := range n {
		go func() {
			<-start
			r := vendorRecord("shop", yubikey)
			r.Name = fmt.Sprintf("writer %d", i)
			errs <- s.Apply(ctx, []persistence.Op{persistence.PutVendorMetadata{Record: r}})[0].Err
		}()
	}
	close(start)
	stored := 0
	for range n {
		if err := <-errs; err == nil {
			stored++
		} else {
			wantCode(t, err, messages.CodeConflict)
		}
	}
	if all, err := s.AllVendorRecords(ctx, nil); stored != 1 || err != nil || len(all) != 1 {
		t.Fatalf("%d puts succeeded and %d records are stored (%v); want 1 and 1", stored, len(all), err)
	}
}
