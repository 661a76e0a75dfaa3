package replicadisk

import (
	"slices"
	"testing"
)

// TestFolderIdentity: a folder keeps its ID and the folders it remembers across a reopen.
func TestFolderIdentity(t *testing.T) {
	dir := t.TempDir()
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	id, err := d.FolderID()
	if err != nil || !validFolderID(id) {
		t.Fatalf("FolderID = %q, %v", id, err)
	}
	if got, err := d.Remembered(); err != nil || got != nil {
		t.Fatalf("a new folder remembers %v, %v", got, err)
	}
	other := "0123456789abcdef"
	if err := d.Remember([]string{other, id, other}); err != nil {
		t.Fatal(err)
	}
	if err := d.Remember([]string{"not an id"}); err == nil {
		t.Fatal("Remember took an invalid ID")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	again, err := d.FolderID()
	if err != nil || again != id {
		t.Fatalf("after a reopen, FolderID = %q, %v; want %q", again, err, id)
	}
	got, err := d.Remembered()
	if want := SortedIDs([]string{id, other}); err != nil || !slices.Equal(got, want) {
		t.Fatalf("after a reopen, Remembered = %v, %v; want %v", got, err, want)
	}
	if d2, err := Open(t.TempDir()); err != nil {
		t.Fatal(err)
	} else {
		defer d2.Close()
		if id2, _ := d2.FolderID(); id2 == id {
			t.Fatal("two folders got the same ID")
		}
	}
}
