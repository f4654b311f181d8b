package postgres_test

import (
	"reflect"
	"testing"

	"github.com/webauthnd/webauthnd/persistence"
)

func TestSmoke(t *testing.T) {
	s := freshStore(t)
	seedCommunity(t, s, "shop")
	c := credential("c1", user("shop", "alice", "h1"))
	mustApply(t, s, persistence.AddCredential{Credential: c, DisplayName: "Alice"})
	u, creds, err := s.UserAndCredentials(bg(), "shop", "alice")
	if err != nil || u.DisplayName != "Alice" || len(creds) != 1 || !reflect.DeepEqual(creds[0], asRead(c)) {
		t.Fatalf("%+v %+v %v", u, creds, err)
	}
	got := mustApply(t, s, persistence.RecordSignIn{ID: c.ID, Counter: 5, At: t1}).(persistence.Credential)
	if got.SignCount != 5 || !got.LastUsed.Equal(t1) {
		t.Fatalf("%+v", got)
	}
	wantCode(t, applyErr(t, s, persistence.RecordSignIn{ID: c.ID, Counter: 5, At: t1}), "counter_regression")
	got2, _ := s.Credential(bg(), c.ID)
	if !got2.CloneWarning {
		t.Fatal("no clone warning")
	}
	shape, err := s.CommonShape(bg(), "shop")
	t.Log(shape, err)
}
