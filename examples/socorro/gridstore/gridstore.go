// Package gridstore stores the collector's crash reports in gridmap maps: the report in map
// crashReports (key: crash ID) and the crash ID with its arrival time in map process, in one
// co-keyed transaction, so both entries live on one owner and a crash is either wholly in the
// grid, waiting to be processed, or not at all.
//
// Package node runs the processor on these maps and configures their write-behind stores.
package gridstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gridmap/gridmap"
	"github.com/gridmap/gridmap/dmap"
	"github.com/gridmap/gridmap/examples/socorro/collector"
)

// Map names.
const (
	ReportsMap = "crashReports"
	ProcessMap = "process"
)

// Store implements collector.Store on a gridmap member.
type Store struct {
	maps    *dmap.Service
	reports *dmap.Map[string, *collector.Crash]
	process *dmap.Map[string, time.Time]
	keep    []dmap.PutOption // the raw crash's TTL, if any
}

// New opens the two maps on member. keep, when positive, is how long a crash's two entries
// stay: they are written with that TTL (see node.Config.KeepRaw).
func New(member *gridmap.Member, keep time.Duration) (*Store, error) {
	reports, err := gridmap.GetMap[string, *collector.Crash](member, ReportsMap)
	if err != nil {
		return nil, fmt.Errorf("gridstore: %w", err)
	}
	process, err := gridmap.GetMap[string, time.Time](member, ProcessMap)
	if err != nil {
		return nil, fmt.Errorf("gridstore: %w", err)
	}
	s := &Store{maps: member.Maps(), reports: reports, process: process}
	if keep > 0 {
		s.keep = []dmap.PutOption{dmap.WithTTL(keep)}
	}
	return s, nil
}

// Save puts the report and its process entry in one transaction: the two keys are the same crash
// ID, so they share a partition. It returns once the commit (with its synchronous backups) is
// done; an error means neither entry was written.
func (s *Store) Save(ctx context.Context, c *collector.Crash) error {
	err := s.maps.RunTx(ctx, func(tx *dmap.Tx) error {
		if err := dmap.InTx(tx, s.reports).Put(ctx, c.ID, c, s.keep...); err != nil {
			return err
		}
		return dmap.InTx(tx, s.process).Put(ctx, c.ID, c.Submitted, s.keep...)
	})
	if errors.Is(err, dmap.ErrMemoryLimit) {
		// The collector answers 503 + Retry-After: the client sends the crash again later.
		return fmt.Errorf("gridstore: save %s: %w: %w", c.ID, collector.ErrStoreFull, err)
	}
	if err != nil {
		return fmt.Errorf("gridstore: save %s: %w", c.ID, err)
	}
	return nil
}

// Report returns the stored report of a crash.
func (s *Store) Report(ctx context.Context, id string) (*collector.Crash, error) {
	return s.reports.Get(ctx, id)
}

// Pending returns the arrival time of a crash still waiting to be processed.
func (s *Store) Pending(ctx context.Context, id string) (time.Time, error) {
	return s.process.Get(ctx, id)
}
