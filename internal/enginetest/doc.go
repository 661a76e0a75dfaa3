// Package enginetest runs the map engine's members in one process for the tests of the engine
// and of its façades (dmap, queue, topic): a control plane played by the test (Coord, Node), the
// members' calls carried by transport.MemNetwork with its fault rules, and the harness both
// packages' tests share (Cluster: start members, kill them, wait for a stable table; Recorder,
// Eventually).
//
// It imports neither the engine nor a façade, so that the engine's own (internal) tests can use
// it: the harness is generic over the service it starts.
package enginetest
