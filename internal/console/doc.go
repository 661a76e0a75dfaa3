// Package console serves a member's management endpoints over HTTP: Prometheus metrics
// (/metrics), a JSON API (/api/...) and a web console (static files embedded in the binary; no
// build step, no external service, no CDN: the page works on a machine without internet).
//
// The package knows nothing of members: a Source gives it the whole cluster's state (the
// member asks the others over its own transport), and optional hooks publish to topics. The
// console is read-only unless a bearer token is configured and sent: write actions (publish)
// are refused with 401 without the token and with 403 when no token is configured.
package console
