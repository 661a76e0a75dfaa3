package queue

import "github.com/gridmap/gridmap/internal/engine"

// Figures is one queue as one member holds it: the figures a console or a metrics scrape
// shows, summed over the members by whoever shows them.
type Figures struct {
	Name string
	// Size is the number of items this member holds as the owner of the queue's partition;
	// BackupSize the number it holds as one of the partition's backups.
	Size, BackupSize int
}

// Figures returns the figures of every queue this member holds items or a head and tail entry
// of, as owner or backup, sorted by name. It reads the member's entry counts
// (engine.Service.Stats): it asks no other member and does not block, so it is cheap enough for
// every scrape. During a migration a queue may show on both the old and the new owner until
// the old one drops its copy.
func (s *Service) Figures() []Figures {
	if s == nil {
		return nil
	}
	var out []Figures
	for _, ms := range s.e.Stats().Maps { // sorted by map name, so by queue name
		k, name, ok := engine.SplitStructureMapName(ms.Name)
		if !ok || k != kind || ms.OwnedEntries+ms.BackupEntries == 0 {
			continue
		}
		out = append(out, Figures{Name: name, Size: itemCount(ms.OwnedEntries), BackupSize: itemCount(ms.BackupEntries)})
	}
	return out
}
