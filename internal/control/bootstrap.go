package control

// mayFoundAlone reports whether this member, seeing nobody else, may
// bootstrap a cluster of its own: Discovery named no member but itself in its
// latest answer, or Config.BootstrapWithoutSeeds is set. Otherwise it logs,
// once, that it waits for its seeds.
func (n *Node) mayFoundAlone() bool {
	if n.seedless.Load() || n.cfg.BootstrapWithoutSeeds {
		return true
	}
	if !n.seedsWarned.Swap(true) {
		n.log.Warn("control: no seed answers; waiting to join them instead of founding a cluster (see Config.BootstrapWithoutSeeds)", "id", n.cfg.ID)
	}
	return false
}
