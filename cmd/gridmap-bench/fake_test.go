package main

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"testing"
)

// fakeEnv makes a child process of the test binary use fakeMember (see TestMain).
const fakeEnv = "GRIDMAP_BENCH_FAKE"

// TestMain runs the test binary as a gridmap-bench child when a -mode procs test starts it.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		var opts runOptions
		if os.Getenv(fakeEnv) == "1" {
			opts.StartMember = startFake
		}
		os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, opts))
	}
	os.Exit(m.Run())
}

var errFakeNotFound = errors.New("fake: not found")

// fakeStore is an in-memory store; ShortBy makes every Get return a value that many bytes short.
type fakeStore struct {
	mu      sync.Mutex
	m       map[string][]byte
	puts    map[string]int
	ShortBy int
	FailPut error
	// BeforePut, if set, runs at the start of every Put (a test stalls a put with it).
	BeforePut func(key string)
}

func newFakeStore() *fakeStore { return &fakeStore{m: map[string][]byte{}, puts: map[string]int{}} }

func (s *fakeStore) Put(ctx context.Context, key string, value []byte) error {
	if s.BeforePut != nil {
		s.BeforePut(key)
	}
	if s.FailPut != nil {
		return s.FailPut
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = append([]byte(nil), value...)
	s.puts[key]++
	return nil
}

func (s *fakeStore) Get(ctx context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[key]
	if !ok {
		return nil, errFakeNotFound
	}
	return v[:len(v)-min(len(v), s.ShortBy)], nil
}

// fakeMember is a member of nobody: its own store, and a TCP listener on its gossip address so
// that the orchestration's waitListening sees it.
type fakeMember struct {
	ln net.Listener
	s  *fakeStore
}

func startFake(ctx context.Context, spec memberSpec) (member, error) {
	ln, err := net.Listen("tcp", spec.GossipBind)
	if err != nil {
		return nil, err
	}
	go func() { // accept and drop, until closed
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return &fakeMember{ln: ln, s: newFakeStore()}, nil
}

func (f *fakeMember) Map() store                      { return f.s }
func (f *fakeMember) GossipAddr() string              { return f.ln.Addr().String() }
func (f *fakeMember) Close(ctx context.Context) error { return f.ln.Close() }
