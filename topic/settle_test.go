package topic

import (
	"fmt"
	"testing"
)

func items(its []item) string {
	s := ""
	for _, it := range its {
		s += fmt.Sprintf("%d:%s ", it.seq, it.payload)
	}
	return s
}

func TestPendingSettlesByLaterEventsOfTheSameOwner(t *testing.T) {
	var p pending
	if got := items(p.add(1, []byte("a"), "A")); got != "" {
		t.Fatalf("the first event settled %q", got)
	}
	if got := items(p.add(2, []byte("b"), "A")); got != "1:a " {
		t.Fatalf("event 2 settled %q, want 1", got)
	}
	// The owner A dies before replicating 2; the new owner B numbers another 2, then 3.
	if got := items(p.add(2, []byte("B2"), "B")); got != "" {
		t.Fatalf("B's 2 settled %q", got)
	}
	if got := items(p.add(3, []byte("c"), "B")); got != "2:B2 " {
		t.Fatalf("B's 3 settled %q, want B's 2", got)
	}
	// A late event of A (4, out of order with B's) settles nothing of B's: B's held 3 is
	// dropped (the subscribers read 3 from the ring), and B's 5 drops A's 4 in turn.
	if got := items(p.add(4, []byte("A4"), "A")); got != "" {
		t.Fatalf("A's late 4 settled %q", got)
	}
	if got := items(p.add(5, []byte("e"), "B")); got != "" {
		t.Fatalf("B's 5 settled %q", got)
	}
	if first, last, ok := p.span(); !ok || first != 5 || last != 5 {
		t.Fatalf("span %d..%d %v", first, last, ok)
	}
}

func TestPendingSettlesByARead(t *testing.T) {
	var p pending
	p.add(7, []byte("old7"), "A") // A dies before replicating it
	_, last, _ := p.span()
	// The ring (now on B) holds 5..7, with B's own 7.
	r := readResult{next: 8, oldest: 5, first: 5, msgs: [][]byte{[]byte("5"), []byte("6"), []byte("new7")}}
	if got := items(p.settleRead(r, last)); got != "7:new7 " {
		t.Fatalf("the read settled %q, want the ring's 7", got)
	}
	// A's 8, never replicated either: the ring's head is 8, so it is lost and dropped.
	p.add(8, []byte("old8"), "A")
	if got := items(p.settleRead(readResult{next: 8, oldest: 5, first: 8}, 8)); got != "" {
		t.Fatalf("settled %q", got)
	}
	if _, _, ok := p.span(); ok {
		t.Fatal("8 is still held after the ring showed it lost")
	}
	// Held numbers beyond the read's last (arrived during the read) stay held.
	p.add(9, []byte("nine"), "B")
	if got := items(p.settleRead(readResult{next: 9, oldest: 5, first: 9}, 8)); got != "" {
		t.Fatalf("settled %q", got)
	}
	if first, _, ok := p.span(); !ok || first != 9 {
		t.Fatal("9 was dropped by a read that began before it arrived")
	}
	p.drop()
	if _, _, ok := p.span(); ok {
		t.Fatal("drop kept a message")
	}
}
