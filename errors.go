package gridmap

import "errors"

// Errors returned by Start and Member methods. Map operations return the sentinels of package
// dmap (dmap.ErrNotFound, dmap.ErrTimeout, ...).
var (
	// ErrInvalidConfig: Config.Validate found problems (the message lists every one), or Start
	// met a configuration error.
	ErrInvalidConfig = errors.New("gridmap: invalid configuration")
	// ErrJoinRefused: Start reached a cluster that refused this member: its Security settings
	// differ (another ClusterName or JoinSecret, GossipKeys the cluster does not use, or a TLS
	// certificate the cluster's CA did not sign). The error says which, and the refusing members
	// log this member's address.
	ErrJoinRefused = errors.New("gridmap: join refused by the cluster")
	// ErrClosed: the member has been closed.
	ErrClosed = errors.New("gridmap: member closed")
)
