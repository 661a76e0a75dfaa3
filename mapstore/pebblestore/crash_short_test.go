//go:build !long

package pebblestore

// crashRounds is how many times the crash test kills its child (more with -tags long).
const crashRounds = 2
