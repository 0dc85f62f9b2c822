package assign

import (
	"strings"
	"testing"
)

func TestStatic(t *testing.T) {
	members := []Member{
		{ID: "b", Addr: "h2:1", Partitions: map[string][]int32{"t": {2, 3}}},
		{ID: "a", Addr: "h1:1", Partitions: map[string][]int32{"t": {0, 1}}},
	}
	a, err := Static(7, "b", members)
	if err != nil {
		t.Fatal(err)
	}
	if self, _ := a.Self(); self.ID != "b" || a.Generation() != 7 || !a.Valid() {
		t.Fatalf("self %q generation %d valid %v", self.ID, a.Generation(), a.Valid())
	}
	if addr, ok := a.Owner("t", 1); !ok || addr != "h1:1" {
		t.Fatalf("owner of t/1 = %q %v", addr, ok)
	}
	if _, ok := a.Owner("t", 4); ok {
		t.Fatal("t/4 has an owner")
	}
	members[0].Partitions["t"] = []int32{1}
	if _, err := Static(1, "a", members); err == nil || !strings.Contains(err.Error(), "partition 1 of t is assigned to a and b") {
		t.Fatalf("duplicate partition: %v", err)
	}
	if _, err := Static(1, "c", members[1:]); err == nil || !strings.Contains(err.Error(), `member "c"`) {
		t.Fatalf("missing self: %v", err)
	}
}
