//go:build long

package pebblestore

const crashRounds = 20
